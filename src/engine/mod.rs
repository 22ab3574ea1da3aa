//! The engine: runs a workflow's iterations, decides when to repair and when to stop.

pub mod decision;
pub mod events;
pub mod fingerprint;
pub mod interrupt;
mod patch_policy;
pub mod repair;
pub mod reporter;
pub mod run_loop;
mod run_state;
pub mod settings;
pub mod template_context;
