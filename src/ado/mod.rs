//! Azure DevOps: what the binary needs to run as the `AgentOrch@1` pipeline task.
//!
//! - [`logging`]: `##vso[...]` logging commands and `##[group]`-style formatting lines, escaped
//!   the way the agent unescapes them;
//! - [`AgentEnv`](crate::core::agent_env::AgentEnv): the environment the agent hands a task,
//!   read once and looked up by name;
//! - [`inputs`]: the task's inputs (`INPUT_*`), typed and checked;
//! - [`service_connection`]: the Azure Resource Manager service connection (`ENDPOINT_*_<id>`)
//!   and the pipeline's OIDC settings for workload identity federation;
//! - [`pipeline_context`]: the predefined pipeline variables, exposed to workflows as `ado`;
//! - [`Secret`](crate::core::secret::Secret): a string that never prints itself;
//! - [`task_environment`]: all of the above in one call, checked together.
//!
//! The Node shim in `ado-task/index.js` starts the binary with `task` and the agent's
//! environment untouched; everything below reads from that environment.

pub mod inputs;
pub mod logging;
pub mod pipeline_context;
pub mod service_connection;
pub mod task_environment;
