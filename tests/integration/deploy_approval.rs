//! `require_approval: true` through the real binary: asked on a terminal (a pty from `script`),
//! refused without one unless `--approve-deploy`, and in a pipeline allowed only inside a
//! deployment job (`ENVIRONMENT_NAME` set by the agent). A refused run runs nothing.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::cli::{Project, RunResult};

/// A gate that leaves a mark, then a deploy to an environment's namespace. The deploy is
/// optional and its kubeconfig missing, so an approved run ends at once and succeeds.
const WORKFLOW: &str = r#"name: shop
environments:
  staging: {namespace: shop-staging, require_approval: false}
  prod: {namespace: shop, require_approval: true}
steps:
  - id: mark
    gate: "echo ran > ran.txt"
  - id: deploy
    required: false
    deploy: {manifests: [k8s/app.yaml], kubeconfig: no-such-kubeconfig.yaml}
"#;

fn project() -> Project {
    let project = Project::new();
    project.file("w.yaml", WORKFLOW).file(
        "k8s/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n",
    );
    project
}

fn ran(project: &Project) -> bool {
    project.path().join("ran.txt").exists()
}

fn run(project: &Project, args: &[&str], env: &[(&str, &str)]) -> RunResult {
    let artifacts = project.artifacts();
    let mut all = vec![
        "run",
        "w.yaml",
        "--artifacts",
        artifacts.to_str().unwrap(),
        "--quiet",
    ];
    all.extend_from_slice(args);
    let mut command = project.command(&all);
    command
        .env_remove("ENVIRONMENT_NAME")
        .env_remove("AGENT_ORCH_APPROVE_DEPLOY");
    for (key, value) in env {
        command.env(key, value);
    }
    RunResult::from(command.output().unwrap())
}

#[test]
fn without_a_terminal_the_run_is_refused_and_nothing_runs() {
    let project = project();

    let result = run(&project, &["--env", "prod"], &[]);

    result.assert_code(2);
    for part in [
        "environment `prod` requires approval",
        "step `deploy`: kubeconfig `no-such-kubeconfig.yaml`, namespace `shop`",
        "--approve-deploy",
    ] {
        assert!(result.stderr.contains(part), "{part}: {}", result.stderr);
    }
    assert!(!ran(&project));
    assert!(!project.artifacts().exists());
}

#[test]
fn approve_deploy_runs_as_a_flag_or_from_the_environment() {
    let flag = project();
    run(&flag, &["--env", "prod", "--approve-deploy"], &[]).assert_code(0);
    assert!(ran(&flag));

    let variable = project();
    run(
        &variable,
        &["--env", "prod"],
        &[("AGENT_ORCH_APPROVE_DEPLOY", "true")],
    )
    .assert_code(0);
    assert!(ran(&variable));
}

#[test]
fn environments_without_the_requirement_and_dry_runs_ask_nothing() {
    let staging = project();
    run(&staging, &["--env", "staging"], &[]).assert_code(0);
    assert!(ran(&staging));

    let dry = project();
    run(&dry, &["--env", "prod", "--dry-run"], &[]).assert_code(0);
    assert!(!ran(&dry));
}

#[test]
fn in_a_pipeline_only_a_deployment_job_deploys() {
    let job = project();
    let result = run(
        &job,
        &["--env", "prod", "--approve-deploy"],
        &[("TF_BUILD", "True")],
    );
    result.assert_code(2);
    assert!(
        result.stderr.contains("deployment job") && result.stderr.contains("ENVIRONMENT_NAME"),
        "{}",
        result.stderr
    );
    assert!(!ran(&job));

    let deployment_job = project();
    run(
        &deployment_job,
        &["--env", "prod"],
        &[("TF_BUILD", "True"), ("ENVIRONMENT_NAME", "fleet-prod")],
    )
    .assert_code(0);
    assert!(ran(&deployment_job));
}

/// The binary on a pseudo-terminal (util-linux `script`), answering `answer` to the question.
#[cfg(target_os = "linux")]
fn on_a_terminal(project: &Project, answer: &str) -> RunResult {
    let artifacts = project.artifacts();
    let command_line = format!(
        "'{}' run w.yaml --env prod --quiet --artifacts '{}'",
        env!("CARGO_BIN_EXE_agent-orch"),
        artifacts.display()
    );
    let mut child = Command::new("script")
        .args([
            "--quiet",
            "--return",
            "--command",
            &command_line,
            "/dev/null",
        ])
        .current_dir(project.path())
        .env("NO_COLOR", "1")
        .env_remove("TF_BUILD")
        .env_remove("ENVIRONMENT_NAME")
        .env_remove("AGENT_ORCH_APPROVE_DEPLOY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    RunResult::from(output)
}

#[cfg(target_os = "linux")]
#[test]
fn on_a_terminal_a_person_is_asked() {
    let yes = project();
    let result = on_a_terminal(&yes, "y\n");
    // `script` puts the pty's output, stderr included, on its stdout.
    assert!(
        result
            .stdout
            .contains("Environment `prod` requires approval")
            && result
                .stdout
                .contains("step `deploy`: kubeconfig `no-such-kubeconfig.yaml`, namespace `shop`")
            && result.stdout.contains("Deploy? [y/N]"),
        "{}",
        result.stdout
    );
    result.assert_code(0);
    assert!(ran(&yes));

    let no = project();
    let result = on_a_terminal(&no, "n\n");
    result.assert_code(2);
    assert!(
        result.stdout.contains("was not approved"),
        "{}",
        result.stdout
    );
    assert!(!ran(&no));
}
