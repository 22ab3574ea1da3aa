//! The gate's YAML forms and schema, and real gate runs through `sh`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::azure::sign_in::AzureSignIn;
use crate::cluster::ledger::DeployLedger;
use crate::redact::Redactor;
use crate::steps::RunInfo;
use crate::steps::service::Services;
use crate::steps::verify::baseline::Baselines;
use crate::workflow::model::{Step, StepKind};
use crate::workflow::span::{Span, Spanned};
use crate::workflow::template::Renderer;

fn parse(yaml: &str) -> Result<GateConfig, serde_saphyr::Error> {
    serde_saphyr::from_str(yaml)
}

#[test]
fn command_string_form() {
    let gate = parse("npm test").unwrap();
    assert_eq!(gate.run.source(), "npm test");
    assert_eq!(gate.shell, None);
    assert!(gate.workdir.is_none());
    assert!(gate.env.is_empty());
}

#[test]
fn map_form() {
    let gate =
        parse("run: make\nshell: bash\nworkdir: app\nenv: {A: '1', B: '{{ vars.b }}'}\n").unwrap();
    assert_eq!(gate.run.source(), "make");
    assert_eq!(gate.shell, Some(Shell::Bash));
    assert_eq!(gate.workdir.unwrap().source(), "app");
    let env: Vec<(&str, &str)> = gate
        .env
        .iter()
        .map(|(name, value)| (name.as_str(), value.source()))
        .collect();
    assert_eq!(env, [("A", "1"), ("B", "{{ vars.b }}")]);
}

#[test]
fn unknown_keys_are_refused_where_they_are_written() {
    let err = parse("run: make\nworkdri: app\n").unwrap_err().to_string();
    assert!(err.contains("unknown field `workdri`"), "{err}");
    assert!(err.contains("line 2 column 1"), "{err}");
}

#[test]
fn missing_run_and_wrong_types_are_refused() {
    let err = parse("workdir: app\n").unwrap_err().to_string();
    assert!(err.contains("missing field `run`"), "{err}");
    let err = parse("[make, test]").unwrap_err().to_string();
    assert!(err.contains("a command string or a map"), "{err}");
    let err = parse("run: make\nshell: fish\n").unwrap_err().to_string();
    assert!(err.contains("fish"), "{err}");
}

#[test]
fn schema_accepts_both_forms_only() {
    let schema = serde_json::to_value(schemars::schema_for!(GateConfig)).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&json!("npm test")));
    assert!(validator.is_valid(&json!({"run": "make", "shell": "bash", "env": {"A": "1"}})));
    assert!(!validator.is_valid(&json!({"run": "make", "workdri": "app"})));
    assert!(!validator.is_valid(&json!({"workdir": "app"})));
    assert!(!validator.is_valid(&json!({"run": "make", "shell": "fish"})));
    assert!(!validator.is_valid(&json!(42)));
}

/// A step context over a temporary repository and artifacts folder.
struct Harness {
    repo: tempfile::TempDir,
    artifacts: tempfile::TempDir,
    step: Step,
    run: RunInfo,
    renderer: Renderer,
    cancel: CancellationToken,
    timeout: Option<Duration>,
    services: Services,
    deployments: DeployLedger,
    redactor: Redactor,
    azure: AzureSignIn,
}

impl Harness {
    fn new(config: &GateConfig) -> Self {
        let repo = tempfile::tempdir().unwrap();
        let artifacts = tempfile::tempdir().unwrap();
        let run = RunInfo {
            run_id: "run-1".to_owned(),
            iteration: 1,
            workdir: repo.path().to_owned(),
            artifacts_dir: artifacts.path().to_owned(),
        };
        let step = Step {
            id: Spanned::detached("check".to_owned()),
            name: None,
            kind: StepKind::Gate(config.clone()),
            required: true,
            condition: None,
            timeout: None,
            retries: 0,
            span: Span::detached(),
            template: None,
        };
        let renderer = Renderer::new(json!({
            "vars": {"greeting": "hello", "dir": "sub"},
            "run": {"id": "run-1", "iteration": 1},
        }));
        Self {
            repo,
            artifacts,
            step,
            run,
            renderer,
            cancel: CancellationToken::new(),
            timeout: None,
            services: Services::default(),
            deployments: DeployLedger::in_memory(),
            redactor: Redactor::default(),
            azure: AzureSignIn::default(),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.artifacts.path().join("steps/check.1.log")
    }

    fn context(&self) -> StepContext<'_> {
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
            baselines: Baselines::none(),
            run_state: None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap()
    }

    async fn run(&self, config: &GateConfig) -> StepOutcome {
        run(config, &self.context()).await
    }
}

fn gate(yaml: &str) -> GateConfig {
    parse(yaml).unwrap()
}

#[tokio::test]
async fn a_passing_command() {
    let config = gate("echo to stdout; echo to stderr >&2");
    let harness = Harness::new(&config);
    let outcome = harness.run(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed);
    assert_eq!(outcome.message, "exit code 0");
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.output_tail, "to stdout\nto stderr\n");
    assert_eq!(harness.log(), "to stdout\nto stderr\n");
    assert_eq!(outcome.log_path, Some(harness.log_path()));
    assert!(outcome.outputs.is_empty());
}

#[tokio::test]
async fn a_failing_command() {
    let config = gate(r#""echo 'error: 2 tests failed'; exit 2""#);
    let harness = Harness::new(&config);
    let outcome = harness.run(&config).await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(outcome.message, "exit code 2");
    assert_eq!(outcome.exit_code, Some(2));
    assert_eq!(outcome.output_tail, "error: 2 tests failed\n");
}

#[tokio::test]
async fn a_command_killed_by_a_signal() {
    let config = gate("kill -KILL $$");
    let harness = Harness::new(&config);
    let outcome = harness.run(&config).await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(outcome.message, "killed by signal 9 (SIGKILL)");
    assert_eq!(outcome.exit_code, None);
}

#[tokio::test]
async fn outputs_in_both_forms() {
    let config = gate(
        r#"run: |
  echo "version=1.4.2" >> "$AGENT_ORCH_OUTPUT"
  printf 'notes<<EOF\nfirst\nsecond\nEOF\n' >> "$AGENT_ORCH_OUTPUT"
"#,
    );
    let harness = Harness::new(&config);
    let outcome = harness.run(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
    let outputs: Vec<(&str, &str)> = outcome
        .outputs
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(outputs, [("version", "1.4.2"), ("notes", "first\nsecond")]);
    // Outputs may be sensitive; they do not stay in the artifacts folder.
    assert!(!outputs_path(&harness.log_path()).exists());
}

#[tokio::test]
async fn a_malformed_outputs_file_fails_the_step() {
    let config = gate(r#"echo "no equals sign" >> "$AGENT_ORCH_OUTPUT""#);
    let harness = Harness::new(&config);
    let outcome = harness.run(&config).await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(
        outcome.message,
        "outputs line 1: expected `name=value` or `name<<DELIMITER`"
    );
}

#[tokio::test]
async fn templates_render_into_run_workdir_and_env() {
    let config = gate(
        r#"run: |
  echo "{{ vars.greeting }} $WHO from $(basename "$PWD")"
workdir: "{{ vars.dir }}"
env: {WHO: "run {{ run.id }}"}
"#,
    );
    let harness = Harness::new(&config);
    std::fs::create_dir(harness.repo.path().join("sub")).unwrap();
    let outcome = harness.run(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
    assert_eq!(outcome.output_tail, "hello run run-1 from sub\n");
}

#[tokio::test]
async fn a_render_error_fails_without_running_anything() {
    let config = gate("echo {{ vars.missing }}");
    let harness = Harness::new(&config);
    let outcome = harness.run(&config).await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(
        outcome
            .message
            .starts_with("failed to render `run`: undefined value"),
        "{}",
        outcome.message
    );
    assert!(!harness.log_path().exists());

    let config = gate("run: 'true'\nenv: {X: '{{ nope }}'}\n");
    let outcome = harness.run(&config).await;
    assert!(
        outcome.message.starts_with("failed to render `env.X`"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn a_missing_workdir_is_reported_as_such() {
    let config = gate("run: 'true'\nworkdir: nowhere\n");
    let harness = Harness::new(&config);
    let outcome = harness.run(&config).await;
    assert_eq!(outcome.status, StepStatus::Failed);
    let expected = format!(
        "workdir `{}` is not a directory",
        harness.repo.path().join("nowhere").display()
    );
    assert_eq!(outcome.message, expected);
}

#[tokio::test]
async fn the_shell_key_is_honoured() {
    let config = gate("run: 'false | true'\nshell: bash\n");
    let harness = Harness::new(&config);
    assert_eq!(harness.run(&config).await.status, StepStatus::Failed);
    let config = gate("run: 'false | true'\nshell: sh\n");
    assert_eq!(harness.run(&config).await.status, StepStatus::Passed);
}

#[tokio::test]
async fn timeout_fails_the_step_and_kills_the_command() {
    let config = gate("echo started; sleep 100 & wait");
    let mut harness = Harness::new(&config);
    harness.timeout = Some(Duration::from_millis(300));
    let started = Instant::now();
    let outcome = harness.run(&config).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(outcome.message, "timed out after 300ms");
    assert_eq!(outcome.output_tail, "started\n");
}

#[tokio::test]
async fn cancel_stops_the_step() {
    let config = gate("touch ready; sleep 100");
    let harness = Harness::new(&config);
    let ready = harness.repo.path().join("ready");
    let cancelling = async {
        wait_for(&ready).await;
        harness.cancel.cancel();
        Instant::now()
    };
    let (outcome, cancelled_at) = tokio::join!(harness.run(&config), cancelling);
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    assert_eq!(outcome.status, StepStatus::Cancelled);
    assert_eq!(outcome.message, "cancelled");
}

#[tokio::test]
async fn secrets_are_masked_in_log_and_tail() {
    let config = gate("run: 'echo \"token: $TOKEN\"'\nenv: {TOKEN: s3cr3t-value}\n");
    let mut harness = Harness::new(&config);
    harness.redactor = Redactor::builder().secret("s3cr3t-value").build();
    let outcome = harness.run(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed);
    assert_eq!(outcome.output_tail, "token: ***\n");
    assert_eq!(harness.log(), "token: ***\n");
}

async fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
