//! A `StepContext` for running one step in a test: a temp dir for its log, a renderer over a
//! given template context, a cancellation token the test can fire.

use std::path::PathBuf;
use std::time::Duration;

use agent_orch::azure::sign_in::AzureSignIn;
use agent_orch::cluster::ledger::DeployLedger;
use agent_orch::redact::Redactor;
use agent_orch::steps::service::Services;
use agent_orch::steps::verify::baseline::Baselines;
use agent_orch::steps::{RunInfo, StepContext};
use agent_orch::workflow::model::{Step, StepKind};
use agent_orch::workflow::span::{Span, Spanned};
use agent_orch::workflow::template::Renderer;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub(crate) struct StepHarness {
    dir: TempDir,
    step: Step,
    run: RunInfo,
    renderer: Renderer,
    pub(crate) cancel: CancellationToken,
    pub(crate) timeout: Option<Duration>,
    pub(crate) services: Services,
    pub(crate) deployments: DeployLedger,
    /// What the step redacts; the run's would know its secrets.
    pub(crate) redactor: Redactor,
    pub(crate) azure: AzureSignIn,
    /// Metric checks' baselines, as the engine would have measured them.
    pub(crate) baselines: Baselines,
}

impl StepHarness {
    pub(crate) fn new(id: &str, kind: StepKind, context: serde_json::Value) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = RunInfo {
            run_id: "test-run".to_owned(),
            iteration: 1,
            workdir: dir.path().to_owned(),
            artifacts_dir: dir.path().join("artifacts"),
        };
        let step = Step {
            id: Spanned::detached(id.to_owned()),
            name: None,
            kind,
            required: true,
            condition: None,
            timeout: None,
            retries: 0,
            span: Span::detached(),
            template: None,
        };
        Self {
            dir,
            step,
            run,
            renderer: Renderer::new(context),
            cancel: CancellationToken::new(),
            timeout: None,
            services: Services::default(),
            deployments: DeployLedger::in_memory(),
            redactor: Redactor::default(),
            azure: AzureSignIn::default(),
            baselines: Baselines::default(),
        }
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        // A directory that does not exist yet: the step creates it.
        self.dir.path().join("artifacts/logs/step.log")
    }

    pub(crate) fn ctx(&self) -> StepContext<'_> {
        StepContext {
            step: &self.step,
            run: &self.run,
            renderer: &self.renderer,
            log_path: self.log_path(),
            echo: false,
            cancel: self.cancel.clone(),
            timeout: self.timeout,
            services: &self.services,
            deployments: &self.deployments,
            redactor: &self.redactor,
            azure: &self.azure,
            baselines: &self.baselines,
            run_state: None,
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).expect("step log written")
    }
}
