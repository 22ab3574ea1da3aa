//! LLM agents: the fixer and the reviewer.
//!
//! ```text
//! FixContext / ReviewContext (from the engine)
//!     → prompt (context within the agent's budget, untrusted data quoted, secrets redacted)
//!     → Agent → tape (live | record | replay) → provider (OpenAI, Azure OpenAI, compatible)
//!     → FixProposal (raw reply) / Review (parsed Verdict), usage counted against the budget
//! ```
//!
//! Modules: `session` (what a run's agents share), `agent` (one agent), `provider` and `retry`
//! (the HTTP side), `context`, `excerpt`, `sources`, `untrusted` and `prompt` (what is sent),
//! `edit_format` (which edit format the fixer is asked for), `verdict`
//! (what the reviewer answers), `record` (the JSONL tape), `usage` (tokens and budget).

pub mod agent;
pub mod context;
pub mod edit_format;
pub mod error;
pub mod excerpt;
pub mod prompt;
pub mod provider;
pub mod record;
pub mod retry;
pub mod session;
pub mod sources;
mod untrusted;
pub mod usage;
pub mod verdict;

pub use agent::{Agent, AgentSetup, FixProposal, Review};
pub use context::{Failure, FixContext, ReviewContext, step_definition};
pub use error::{LlmError, LlmErrorKind};
pub use session::{LlmSession, TapeMode};
pub use usage::{TokenBudget, Usage};
pub use verdict::{Risk, Verdict};
