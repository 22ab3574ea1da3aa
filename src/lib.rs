//! agent-orch: self-healing deploy workflows written as YAML data.
//!
//! The data flow, from the file a user writes to the reports a run leaves:
//!
//! ```text
//! workflow/ (load → template expansion → validate → model)
//!     → engine/ (the iteration loop, safety limits, failure fingerprints)
//!         → steps/ (one file per step kind: gate, verify, deploy, fix, review, rollback)
//!     → engine::events::Event stream → report/ (console, run.log, junit, audit, metrics, summary)
//! ```

pub mod cli;
pub mod cluster;
pub mod engine;
pub mod process;
pub mod report;
pub mod steps;
pub mod workflow;
