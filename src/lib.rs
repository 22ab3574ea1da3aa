//! agent-orch: self-healing deploy workflows written as YAML data.
//!
//! The data flow, from the file a user writes to the reports a run leaves:
//!
//! ```text
//! cli → commands/ (run, task, validate, plan, schema)
//!   → workflow/ (load → template expansion → decode → validate → model)
//!   → engine/ (the iteration loop, the repair phase, safety limits, failure fingerprints,
//!       interrupts)
//!       → steps/ (one file per step kind: gate, service, verify, deploy, fix, review, rollback,
//!         pull_request)
//!           → integrations: process/, http, llm/, patch/, cluster/, ado/, azure/ (Key Vault),
//!             git/
//!   → engine::events::Event stream → report/ (console or pipeline, run.log, junit, audit,
//!     metrics, summary, outputs, notifications, the telemetry trace → telemetry/)
//!
//! cli → commands/hub, commands/worker
//!   → hub/ (store over SQLite / PostgreSQL → api/ over HTTP + /ws → dashboard)
//!   → hub/worker: claim a task → the engine above runs its workflow → progress and evidence
//! ```

pub mod ado;
mod app;
pub mod azure;
pub mod cli;
pub mod cluster;
mod commands;
pub mod core;
pub mod engine;
pub mod error;
pub mod git;
pub mod http;
pub mod hub;
pub mod llm;
pub mod notify;
pub mod patch;
pub mod process;
pub mod redact;
pub mod report;
pub mod session;
pub mod steps;
pub mod telemetry;
pub mod worker;
pub mod workflow;
pub mod workflow_run;

pub use app::run;
