//! Step kinds: one module each, named after the kind's key, holding what the step does: its
//! `describe` (for `--dry-run`) and its `run`. [`describe`] and [`run`] reach them through the
//! table of step kinds in the workflow language, where the settings each accepts live too
//! (`workflow::step_config`).
//!
//! Every kind runs through the same contract: it receives a [`StepContext`] and returns a
//! [`StepOutcome`]. It never panics on user input and never returns early without an outcome:
//! a failure is an outcome, with a message people can act on.

pub mod deploy;
pub mod fix;
pub mod gate;
pub mod pull_request;
pub mod review;
pub mod rollback;
mod run_state;
pub mod service;
mod step_log;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use self::run_state::RunState;
use crate::azure::sign_in::AzureSignIn;
use crate::cluster::ledger::DeployLedger;
use crate::llm::Failure;
use crate::redact::Redactor;
use crate::workflow::model::{Step, StepKind};
use crate::workflow::step_kind::step_kinds;
use crate::workflow::template::{Renderer, Template};

/// What a step sees of the run it belongs to.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub run_id: String,
    pub iteration: u32,
    /// The directory commands run in unless a step says otherwise (the workflow's repo).
    pub workdir: PathBuf,
    /// This run's artifacts folder.
    pub artifacts_dir: PathBuf,
}

/// Everything a step needs while it runs.
pub struct StepContext<'a> {
    pub step: &'a Step,
    pub run: &'a RunInfo,
    /// Renders the step's templates against the run's current context.
    pub renderer: &'a Renderer,
    /// This step's log file for this iteration; the step creates it.
    pub log_path: PathBuf,
    /// Stream the step's output live to the terminal as well as to the log.
    pub echo: bool,
    /// Cancelled on Ctrl-C / SIGTERM / pipeline cancel: stop, kill what was started, return.
    pub cancel: CancellationToken,
    /// The step's own `timeout`, if any.
    pub timeout: Option<Duration>,
    /// Services started in this iteration; the engine stops them when it ends.
    pub services: &'a service::Services,
    /// What this run deployed and what was live before: deploy steps record, rollback reads.
    pub deployments: &'a DeployLedger,
    /// The run's redactor (its secrets and every credential shape): applied to the step's
    /// log, echo and messages.
    pub redactor: &'a Redactor,
    /// How to sign in to Azure (an AKS deploy or rollback, an Azure Monitor query).
    pub azure: &'a AzureSignIn,
    /// Metric checks' values measured before the run's first deploy (`baseline:`).
    pub baselines: &'a verify::baseline::Baselines,
    /// The engine's state of the run, for the steps that need it (`fix`, `review`,
    /// `pull_request`); `None` when a step runs outside a run's loop.
    pub run_state: Option<&'a mut dyn RunState>,
}

/// Expands the step-kind table into [`describe`] and [`run`]: each kind's behaviour is in the
/// module named after its key, `steps::<key>::{describe, run}`.
macro_rules! step_dispatch {
    ($($(#[$doc:meta])* $key:ident => $Variant:ident($Config:ty),)*) => {
        /// What the step would do, for `--dry-run`: its main setting rendered where it can be.
        /// A value only an earlier step would produce (`steps.build.outputs.x`) leaves the
        /// template as written.
        pub fn describe(ctx: &StepContext<'_>) -> String {
            match &ctx.step.kind {
                $(StepKind::$Variant(config) => $key::describe(config, ctx),)*
            }
        }

        /// Runs one step once, whatever its kind.
        pub async fn run(ctx: &mut StepContext<'_>) -> StepOutcome {
            let step = ctx.step;
            match &step.kind {
                $(StepKind::$Variant(config) => $key::run(config, ctx).await,)*
            }
        }
    };
}
step_kinds!(step_dispatch);

/// A template for [`describe`]: rendered if it can be, as written otherwise, on one line.
fn rendered_line(ctx: &StepContext<'_>, template: &Template) -> String {
    let text = ctx
        .renderer
        .render(template)
        .unwrap_or_else(|_| template.source().to_owned());
    one_line(&text)
}

/// Runs `step`, failing it when it overruns `timeout`: for steps whose work happens elsewhere
/// (the engine's repair state), which cannot stop it themselves.
async fn within_timeout(
    timeout: Option<Duration>,
    step: impl Future<Output = StepOutcome>,
) -> StepOutcome {
    match timeout {
        None => step.await,
        Some(limit) => tokio::time::timeout(limit, step)
            .await
            .unwrap_or_else(|_| StepOutcome::timed_out(limit)),
    }
}

/// A multi-line script as one short line: `npm ci; npm run build`.
fn one_line(text: &str) -> String {
    const MAX_CHARS: usize = 160;
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match joined.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed,
    /// Verification could not decide (neither success nor failure condition held).
    Inconclusive,
    /// Not run: its `if` was false, or an earlier required step failed.
    Skipped,
    /// Stopped by Ctrl-C / SIGTERM / pipeline cancel.
    Cancelled,
}

impl StepStatus {
    /// The status as reports write it: `passed`, `failed`, `inconclusive`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Passed => "passed",
            StepStatus::Failed => "failed",
            StepStatus::Inconclusive => "inconclusive",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, StepStatus::Passed | StepStatus::Skipped)
    }
}

// Here rather than in `llm`, which sits below the steps it is told about.
impl Failure {
    pub fn from_outcome(step: &Step, outcome: &StepOutcome) -> Self {
        Self {
            step_id: step.id.value.clone(),
            kind: step.kind.key().to_owned(),
            message: outcome.message.clone(),
            exit_code: outcome.exit_code,
            log_path: outcome.log_path.clone(),
            output_tail: outcome.output_tail.clone(),
            evidence: outcome.evidence.clone(),
        }
    }
}

/// The result of running one step once.
#[derive(Clone, Debug, Serialize)]
pub struct StepOutcome {
    pub status: StepStatus,
    /// One line, lowercase, why: `exit code 2`, `timed out after 5s`, `expected status 200, got 503`.
    pub message: String,
    pub exit_code: Option<i32>,
    /// The last lines of output (bounded), for reports and the fix step.
    pub output_tail: String,
    /// Values the step published, readable as `steps.<id>.outputs.<name>`.
    pub outputs: IndexMap<String, String>,
    /// Extra failure context for the fix step (HTTP responses, pod logs, events), trimmed.
    pub evidence: Option<String>,
    pub log_path: Option<PathBuf>,
}

impl StepOutcome {
    pub fn new(status: StepStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            exit_code: None,
            output_tail: String::new(),
            outputs: IndexMap::new(),
            evidence: None,
            log_path: None,
        }
    }

    pub fn passed(message: impl Into<String>) -> Self {
        Self::new(StepStatus::Passed, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(StepStatus::Failed, message)
    }

    /// A step stopped at its `timeout`.
    pub fn timed_out(limit: Duration) -> Self {
        Self::failed(format!(
            "timed out after {}",
            humantime::format_duration(limit)
        ))
    }
}
