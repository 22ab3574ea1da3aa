//! The lowest layer: plain types every other module may use, which import nothing of the crate
//! above them.
//!
//! - [`secret`]: a string that never prints itself;
//! - [`agent_env`]: the environment the Azure Pipelines agent hands a task, read once and looked
//!   up by name;
//! - [`error_chain`]: an error and its causes on one line.

pub mod agent_env;
pub mod error_chain;
pub mod secret;
