//! The fake Kubernetes API server (`agent_orch::cluster::fake`) started on 127.0.0.1 for a test,
//! a kubeconfig pointing at it, and helpers that run the deploy and rollback steps against it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_orch::azure::sign_in::AzureSignIn;
use agent_orch::cluster::fake::{self, FakeCluster, FakeOptions};
use agent_orch::cluster::ledger::DeployLedger;
use agent_orch::redact::Redactor;
use agent_orch::steps::service::Services;
use agent_orch::steps::verify::baseline::Baselines;
use agent_orch::steps::{RunInfo, StepContext, StepOutcome};
use agent_orch::workflow::model::{Step, StepKind};
use agent_orch::workflow::span::{Span, Spanned};
use agent_orch::workflow::step_config::deploy::DeployConfig;
use agent_orch::workflow::step_config::rollback::RollbackConfig;
use agent_orch::workflow::template::Renderer;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub(crate) const NAMESPACE: &str = "staging";

pub(crate) struct TestCluster {
    pub fake: FakeCluster,
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
    pub ledger: DeployLedger,
    pub cancel: CancellationToken,
    /// How deploys sign in to Azure (AKS tests set a service connection).
    pub azure: AzureSignIn,
    renderer: Renderer,
}

impl TestCluster {
    pub(crate) async fn start() -> Self {
        Self::start_with(FakeOptions::default()).await
    }

    pub(crate) async fn start_with(options: FakeOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("should succeed");
        let fake = fake::serve(listener, options)
            .await
            .expect("should succeed");
        let dir = tempfile::tempdir().expect("should succeed");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        fake.write_kubeconfig(&kubeconfig, "default")
            .expect("should succeed");
        let ledger =
            DeployLedger::in_artifacts(&dir.path().join("artifacts")).expect("should succeed");
        let renderer = Renderer::new(serde_json::json!({
            "env": {"namespace": NAMESPACE},
            "vars": {"registry": "registry.local", "replicas": 2},
        }));
        Self {
            fake,
            dir,
            kubeconfig,
            ledger,
            cancel: CancellationToken::new(),
            azure: AzureSignIn::default(),
            renderer,
        }
    }

    pub(crate) fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("should succeed")).expect("should succeed");
        std::fs::write(&path, text).expect("should succeed");
        path
    }

    /// What templates see (`env`, `vars`, ...), replacing the defaults.
    pub(crate) fn set_template_context(&mut self, context: serde_json::Value) {
        self.renderer = Renderer::new(context);
    }

    /// A deploy config from YAML, with `kubeconfig` pointing at the fake unless it sets one
    /// (or reaches the cluster through `aks`, or is meant to use `env.aks`: `# env.aks`).
    pub(crate) fn deploy_config(&self, yaml: &str) -> DeployConfig {
        let yaml = if yaml.contains("kubeconfig:") || yaml.contains("aks") {
            yaml.to_owned()
        } else {
            format!("{yaml}\nkubeconfig: {}\n", self.kubeconfig.display())
        };
        serde_saphyr::from_str(&yaml).expect("should succeed")
    }

    fn run_info(&self) -> RunInfo {
        RunInfo {
            run_id: "test-run".into(),
            iteration: 1,
            workdir: self.dir.path().to_owned(),
            artifacts_dir: self.dir.path().join("artifacts"),
        }
    }

    fn step(id: &str, kind: StepKind) -> Step {
        Step {
            id: Spanned::detached(id.to_owned()),
            name: None,
            kind,
            required: true,
            condition: None,
            timeout: None,
            retries: 0,
            span: Span::detached(),
            template: None,
        }
    }

    pub(crate) async fn deploy(&self, config: &DeployConfig) -> StepOutcome {
        self.deploy_with(
            config,
            "deploy",
            &self.ledger,
            Some(Duration::from_secs(30)),
        )
        .await
    }

    pub(crate) async fn deploy_with(
        &self,
        config: &DeployConfig,
        step_id: &str,
        ledger: &DeployLedger,
        timeout: Option<Duration>,
    ) -> StepOutcome {
        let step = Self::step(step_id, StepKind::Deploy(config.clone()));
        let run = self.run_info();
        let services = Services::default();
        let ctx = StepContext {
            step: &step,
            run: &run,
            renderer: &self.renderer,
            log_path: self.dir.path().join(format!("logs/{step_id}.log")),
            echo: false,
            cancel: self.cancel.clone(),
            timeout,
            deployments: ledger,
            services: &services,
            redactor: &Redactor::default(),
            azure: &self.azure,
            baselines: Baselines::none(),
            run_state: None,
        };
        agent_orch::steps::deploy::run(config, &ctx).await
    }

    pub(crate) async fn rollback(&self, yaml: &str) -> StepOutcome {
        self.rollback_with(yaml, &self.ledger).await
    }

    pub(crate) async fn rollback_with(&self, yaml: &str, ledger: &DeployLedger) -> StepOutcome {
        let config: RollbackConfig = serde_saphyr::from_str(yaml).expect("should succeed");
        let step = Self::step("undo", StepKind::Rollback(config.clone()));
        let run = self.run_info();
        let services = Services::default();
        let ctx = StepContext {
            step: &step,
            run: &run,
            renderer: &self.renderer,
            log_path: self.dir.path().join("logs/undo.log"),
            echo: false,
            cancel: self.cancel.clone(),
            timeout: Some(Duration::from_secs(30)),
            deployments: ledger,
            services: &services,
            redactor: &Redactor::default(),
            azure: &self.azure,
            baselines: Baselines::none(),
            run_state: None,
        };
        agent_orch::steps::rollback::run(&config, &ctx).await
    }

    pub(crate) fn image_of(&self, deployment: &str) -> Option<String> {
        let deployment = self.fake.deployment(NAMESPACE, deployment)?;
        deployment
            .spec?
            .template
            .spec?
            .containers
            .first()?
            .image
            .clone()
    }

    pub(crate) fn revision_of(&self, deployment: &str) -> Option<String> {
        self.fake
            .deployment(NAMESPACE, deployment)?
            .metadata
            .annotations?
            .get("deployment.kubernetes.io/revision")
            .cloned()
    }

    pub(crate) fn artifacts(&self) -> &Path {
        self.dir.path()
    }
}

/// A Deployment manifest; `extra_spec` lines go under `spec:` (indented by the caller).
pub(crate) fn deployment_manifest(name: &str, image: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {{{{ vars.replicas }}}}
{extra_spec}  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
        ports:
        - containerPort: 8080
"
    )
}
