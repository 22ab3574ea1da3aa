//! What each step kind accepts in a workflow file: its configuration, decoded and described in
//! the schema here, in the workflow language; `steps::<kind>` runs it.

pub mod deploy;
pub mod fix;
pub mod gate;
pub mod pull_request;
pub mod review;
pub mod rollback;
pub mod shell;
pub mod verify;
pub mod verify_metric;
