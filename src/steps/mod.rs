//! Step kinds: one file each, holding what the step accepts (its YAML settings) and what it does.
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
pub mod service;
mod step_log;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::azure::sign_in::AzureSignIn;
use crate::cluster::ledger::DeployLedger;
use crate::llm::Failure;
use crate::redact::Redactor;
use crate::workflow::model::{Step, StepKind};
use crate::workflow::step_config::verify::VerifyConfig;
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
}

/// What the step would do, for `--dry-run`: its main setting rendered where it can be. A value
/// only an earlier step would produce (`steps.build.outputs.x`) leaves the template as written.
pub fn describe(ctx: &StepContext<'_>) -> String {
    let show = |template: &Template| {
        let text = ctx
            .renderer
            .render(template)
            .unwrap_or_else(|_| template.source().to_owned());
        one_line(&text)
    };
    match &ctx.step.kind {
        StepKind::Gate(config) => format!("would run `{}`", show(&config.run)),
        StepKind::Service(config) => format!("would start `{}`", show(&config.run)),
        StepKind::Verify(VerifyConfig::Http(http)) => {
            format!("would check {} {}", http.method.as_str(), show(&http.url))
        }
        StepKind::Verify(VerifyConfig::Flow(flow)) => {
            format!("would run a flow of {} request(s)", flow.requests.len())
        }
        StepKind::Verify(VerifyConfig::Script(script)) => {
            format!("would run `{}`", show(&script.run))
        }
        StepKind::Verify(crate::workflow::step_config::verify::VerifyConfig::Prometheus(check)) => {
            format!(
                "would query {} for `{}`",
                show(&check.url),
                show(&check.query)
            )
        }
        StepKind::Verify(crate::workflow::step_config::verify::VerifyConfig::LogAnalytics(
            check,
        )) => format!(
            "would query Log Analytics workspace {} for `{}`",
            show(&check.workspace),
            show(&check.query)
        ),
        StepKind::Deploy(config) => format!(
            "would apply {}",
            config
                .manifests
                .iter()
                .map(show)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        StepKind::Rollback(_) => "would roll back what this run deployed".to_owned(),
        StepKind::Fix(config) => format!("would ask agent `{}` for a patch", config.agent.value),
        StepKind::Review(config) => {
            format!(
                "would ask agent `{}` to review the patch",
                config.agent.value
            )
        }
        StepKind::PullRequest(config) => format!(
            "would push the run's patches and open a pull request ({})",
            config.provider
        ),
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

/// Runs one step once, whatever its kind.
pub async fn run(ctx: &StepContext<'_>) -> StepOutcome {
    match &ctx.step.kind {
        StepKind::Gate(config) => gate::run(config, ctx).await,
        StepKind::Service(config) => service::run(config, ctx).await,
        StepKind::Verify(config) => verify::run(config, ctx).await,
        // They need the run's repair state (agents, the failure, the proposed patch): the
        // engine runs them itself (`engine::repair`).
        StepKind::Fix(_) | StepKind::Review(_) => StepOutcome::failed(format!(
            "`{}` steps run only in a workflow's `repair:` phase",
            ctx.step.kind.key()
        )),
        // It delivers what the run fixed, which the engine hands it (`engine::run_loop`).
        StepKind::PullRequest(_) => {
            StepOutcome::failed("`pull_request` steps run only in a workflow's `on_success:` phase")
        }
        StepKind::Deploy(config) => deploy::run(config, ctx).await,
        StepKind::Rollback(config) => rollback::run(config, ctx).await,
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
}
