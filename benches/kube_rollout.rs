//! Failure detection and rollback speed of the deploy and rollback steps, against the fake
//! Kubernetes API server (`agent_orch::cluster::fake`, a 50 ms simulator tick) through the real
//! kube client.
//!
//! Detection latency: from the instant the fake first shows the failure reason on a pod (or sets
//! ProgressDeadlineExceeded on the deployment) to the deploy step returning, evidence (logs,
//! events) included. Rollback: the rollback step's wall time, from the call to the restored
//! revision being available, after a crash-looping deploy (the old pods still run) and after a
//! deploy that rolled out but failed verification (the old pods must start again).
//!
//! Run: `cargo bench --bench kube_rollout`. Floor (the issue): detection under 5 s.

use std::io::Write as _;
use std::time::{Duration, Instant};

use agent_orch::azure::sign_in::AzureSignIn;
use agent_orch::cluster::fake::{self, FakeCluster, FakeOptions};
use agent_orch::cluster::ledger::DeployLedger;
use agent_orch::redact::Redactor;
use agent_orch::steps::service::Services;
use agent_orch::steps::verify::baseline::Baselines;
use agent_orch::steps::{RunInfo, StepContext, StepOutcome, StepStatus};
use agent_orch::workflow::model::{Step, StepKind};
use agent_orch::workflow::span::{Span, Spanned};
use agent_orch::workflow::step_config::deploy::DeployConfig;
use agent_orch::workflow::step_config::rollback::RollbackConfig;
use agent_orch::workflow::template::Renderer;
use tokio_util::sync::CancellationToken;

const RUNS: usize = 20;
const NAMESPACE: &str = "bench";
const DETECTION_FLOOR: Duration = Duration::from_secs(5);

struct Bench {
    fake: FakeCluster,
    dir: tempfile::TempDir,
    renderer: Renderer,
}

fn manifest(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 2\n{extra}  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n"
    )
}

fn step(kind: StepKind) -> Step {
    Step {
        id: Spanned::detached("deploy".to_owned()),
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

impl Bench {
    fn run_info(&self) -> RunInfo {
        RunInfo {
            run_id: "bench".into(),
            iteration: 1,
            workdir: self.dir.path().to_owned(),
            artifacts_dir: self.dir.path().join("artifacts"),
        }
    }

    async fn deploy(
        &self,
        name: &str,
        image: &str,
        extra: &str,
        ledger: &DeployLedger,
    ) -> StepOutcome {
        let file = format!("{name}.yaml");
        std::fs::write(self.dir.path().join(&file), manifest(name, image, extra))
            .expect("write manifest");
        let config: DeployConfig = serde_saphyr::from_str(&format!(
            "manifests: [{file}]\nnamespace: {NAMESPACE}\nkubeconfig: kubeconfig.yaml\n"
        ))
        .expect("deploy config");
        let step = step(StepKind::Deploy(config.clone()));
        let run = self.run_info();
        let services = Services::default();
        let ctx = StepContext {
            step: &step,
            run: &run,
            renderer: &self.renderer,
            log_path: self.dir.path().join(format!("logs/{name}.log")),
            echo: false,
            cancel: CancellationToken::new(),
            timeout: Some(Duration::from_secs(30)),
            deployments: ledger,
            services: &services,
            redactor: &Redactor::default(),
            azure: &AzureSignIn::default(),
            baselines: Baselines::none(),
            run_state: None,
        };
        agent_orch::steps::deploy::run(&config, &ctx).await
    }

    async fn rollback(&self, ledger: &DeployLedger) -> StepOutcome {
        let config: RollbackConfig = serde_saphyr::from_str("{}").expect("rollback config");
        let step = step(StepKind::Rollback(config.clone()));
        let run = self.run_info();
        let services = Services::default();
        let ctx = StepContext {
            step: &step,
            run: &run,
            renderer: &self.renderer,
            log_path: self.dir.path().join("logs/rollback.log"),
            echo: false,
            cancel: CancellationToken::new(),
            timeout: Some(Duration::from_secs(30)),
            deployments: ledger,
            services: &services,
            redactor: &Redactor::default(),
            azure: &AzureSignIn::default(),
            baselines: Baselines::none(),
            run_state: None,
        };
        agent_orch::steps::rollback::run(&config, &ctx).await
    }
}

fn median(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

#[tokio::main]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake = fake::serve(listener, FakeOptions::default())
        .await
        .expect("fake cluster");
    let dir = tempfile::tempdir().expect("temp dir");
    fake.write_kubeconfig(&dir.path().join("kubeconfig.yaml"), NAMESPACE)
        .expect("kubeconfig");
    let bench = Bench {
        fake,
        dir,
        renderer: Renderer::new(serde_json::json!({})),
    };
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "failure detection, {RUNS} runs each (pod reports reason -> deploy step fails):"
    );
    let cases = [
        ("CrashLoopBackOff", "web:crashloop", ""),
        ("ImagePullBackOff", "web:imagepullbackoff", ""),
        ("ErrImagePull", "web:errimagepull", ""),
        ("CreateContainerConfigError", "web:configerror", ""),
        ("InvalidImageName", "web:invalidimagename", ""),
        ("OOMKilled", "web:oomkilled", ""),
        (
            "ProgressDeadlineExceeded",
            "web:unschedulable",
            "  progressDeadlineSeconds: 1\n",
        ),
    ];
    let mut worst = Duration::ZERO;
    for (index, (reason, image, extra)) in cases.iter().enumerate() {
        let mut samples = Vec::new();
        for run in 0..RUNS {
            let name = format!("d{index}-{run}");
            let ledger = DeployLedger::in_memory();
            let outcome = bench.deploy(&name, image, extra, &ledger).await;
            let finished = Instant::now();
            assert_eq!(outcome.status, StepStatus::Failed, "{}", outcome.message);
            assert_eq!(
                outcome.outputs.get("failure_reason").map(String::as_str),
                Some(*reason)
            );
            let (reported, at) = bench
                .fake
                .failure_reported(NAMESPACE, &name)
                .expect("reported");
            assert_eq!(reported, *reason);
            samples.push(finished.duration_since(at));
        }
        let (median, max) = median(samples);
        worst = worst.max(max);
        let _ = writeln!(out, "  {reason:<28} median {median:>9.1?}  max {max:>9.1?}");
    }

    // After a crash loop the old pods still run; after a verify failure they must come back.
    for (label, bad_image, deploy_status) in [
        ("after a crash loop", "web:crashloop", StepStatus::Failed),
        ("after a failed verify", "web:2.0.0", StepStatus::Passed),
    ] {
        let mut samples = Vec::new();
        for run in 0..RUNS {
            let name = format!("rb-{}-{run}", bad_image.replace([':', '.'], "-"));
            let outcome = bench
                .deploy(&name, "web:1.0.0", "", &DeployLedger::in_memory())
                .await;
            assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
            let ledger = DeployLedger::in_memory();
            let outcome = bench.deploy(&name, bad_image, "", &ledger).await;
            assert_eq!(outcome.status, deploy_status, "{}", outcome.message);
            let started = Instant::now();
            let outcome = bench.rollback(&ledger).await;
            samples.push(started.elapsed());
            assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
        }
        let (median, max) = median(samples);
        let _ = writeln!(
            out,
            "rollback {label:<21} {RUNS} runs (step start -> previous revision available): median {median:>7.1?}  max {max:>7.1?}"
        );
    }
    assert!(
        worst < DETECTION_FLOOR,
        "slowest detection {worst:?} is over the {DETECTION_FLOOR:?} floor"
    );
}
