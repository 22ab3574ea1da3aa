//! The event stream the engine emits; every reporter (console, logs, JUnit, audit, metrics,
//! summary) is fed from it and from nothing else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use serde::Serialize;

use crate::steps::StepOutcome;
use crate::workflow::model::Phase;

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        workflow: String,
        workflow_path: PathBuf,
        environment: Option<String>,
        artifacts_dir: PathBuf,
        max_iterations: u32,
        #[serde(serialize_with = "rfc3339")]
        at: SystemTime,
    },
    IterationStarted {
        iteration: u32,
    },
    StepStarted {
        iteration: u32,
        phase: Phase,
        step_id: String,
        step_name: String,
        kind: &'static str,
        /// 1-based position among the steps of its phase.
        index: usize,
        total: usize,
    },
    StepFinished {
        iteration: u32,
        phase: Phase,
        step_id: String,
        step_name: String,
        kind: &'static str,
        required: bool,
        #[serde(serialize_with = "seconds")]
        duration: Duration,
        outcome: Arc<StepOutcome>,
    },
    IterationFinished {
        iteration: u32,
        passed: bool,
        /// Normalized signature of the iteration's failure, if it failed.
        fingerprint: Option<String>,
        /// `stage/step: message` of the first required failure.
        failure: Option<String>,
    },
    /// A choice the engine or an agent made: no-progress stop, budget stop, patch verdicts, ...
    ///
    /// `detail` is free-form and lands whole in `audit.jsonl`. Two keys are read by other
    /// reports: a `summary` string (or `reason`, `message`, `verdict`, `failure`) is the one
    /// line the console and `run.log` show, and `tokens: {"prompt": n, "completion": n}` is
    /// summed into `metrics.json`.
    Decision {
        iteration: u32,
        kind: String,
        detail: serde_json::Value,
    },
    /// The workflow's `outputs`, rendered after a successful run (before `RunFinished`).
    OutputsRendered {
        outputs: IndexMap<String, String>,
    },
    RunFinished {
        outcome: RunOutcome,
        /// Why the run stopped, in one lowercase line.
        reason: String,
        iterations: u32,
        #[serde(serialize_with = "seconds")]
        duration: Duration,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    /// Succeeded, but a `required: false` step failed along the way.
    SucceededWithIssues,
    /// Gave up: max iterations, no progress, budget, or a failure that cannot be repaired.
    Failed,
    Interrupted,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

fn rfc3339<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*at))
}
