//! `agent-orch run` end to end: exit codes, the loop's stop conditions, artifacts, signals.

use std::time::{Duration, Instant};

use crate::keyvault;
use crate::support::azure_server::IDENTITY_HEADER;
use crate::support::cli::{Project, RunResult};
use crate::support::http_service::{HttpService, Script};
use crate::support::managed_identity_fake;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"))
}

#[test]
fn a_passing_workflow_exits_0_and_leaves_every_report() {
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: passing
steps:
  - {id: lint, gate: "echo linting; echo 'warning: unused' >&2"}
  - {id: test, gate: "echo 3 tests passed"}
"#,
    );
    project.run_workflow("w.yaml", &[]).assert_code(0);

    let junit = project.read("artifacts/junit.xml");
    assert!(junit.contains(r#"<testcase name="lint""#), "{junit}");
    assert!(junit.contains(r#"<testcase name="test""#), "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");

    let metrics = json(&project.read("artifacts/metrics.json"));
    assert_eq!(metrics["outcome"], "succeeded", "{metrics}");
    assert_eq!(metrics["iterations"], 1, "{metrics}");

    let audit = project.read("artifacts/audit.jsonl");
    let events: Vec<serde_json::Value> = audit.lines().map(json).collect();
    assert_eq!(
        events.first().map(|e| e["event"].clone()),
        Some("run_started".into())
    );
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some("run_finished".into())
    );

    let lint_log = project.read("artifacts/steps/1-steps/lint.log");
    assert!(lint_log.contains("linting"), "{lint_log}");
    assert!(
        lint_log.contains("warning: unused"),
        "stderr goes to the log too: {lint_log}"
    );
    assert!(project.read("artifacts/summary.md").contains("lint"));
    assert!(project.read("artifacts/run.log").contains("test"));
}

#[test]
fn the_same_failure_twice_stops_on_no_progress_with_exit_1() {
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: stuck
safety: {max_iterations: 5, no_progress_threshold: 2}
steps:
  - id: test
    gate: "echo \"$(date +%s%N) error: assertion failed at test_x.py:12\"; exit 1"
  - {id: after, gate: "touch after-ran"}
"#,
    );
    let result = project.run_workflow("w.yaml", &[]);
    result.assert_code(1);
    assert!(result.stderr.contains("no progress"), "{}", result.stderr);

    let metrics = json(&project.read("artifacts/metrics.json"));
    assert_eq!(metrics["outcome"], "failed");
    assert_eq!(
        metrics["iterations"], 2,
        "timestamps must not defeat the fingerprint"
    );
    assert!(
        !project.path().join("after-ran").exists(),
        "steps after a failed required step are skipped"
    );
    let junit = project.read("artifacts/junit.xml");
    assert_eq!(junit.matches("<testsuite ").count(), 2, "{junit}");
    assert!(junit.contains("exit code 1"), "{junit}");
}

#[test]
fn changing_failures_run_until_max_iterations() {
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: flailing
safety: {max_iterations: 3, no_progress_threshold: 2}
steps:
  - id: test
    gate: "echo x >> count; echo \"error: $(wc -l < count | tr -d ' ') things broke\"; exit 1"
"#,
    );
    let result = project.run_workflow("w.yaml", &[]);
    result.assert_code(1);
    assert!(
        result.stderr.contains("max iterations"),
        "{}",
        result.stderr
    );
    assert_eq!(project.read("count").lines().count(), 3);
}

#[test]
fn max_iterations_flag_overrides_the_file() {
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: flailing
safety: {max_iterations: 5, no_progress_threshold: 9}
steps:
  - {id: test, gate: "echo x >> count; exit 1"}
"#,
    );
    project
        .run_workflow("w.yaml", &["--max-iterations", "2"])
        .assert_code(1);
    assert_eq!(project.read("count").lines().count(), 2);
}

#[test]
fn an_optional_failure_warns_but_succeeds() {
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: optional
steps:
  - {id: lint, gate: "exit 3", required: false}
  - {id: test, gate: "true"}
"#,
    );
    project.run_workflow("w.yaml", &[]).assert_code(0);
    let metrics = json(&project.read("artifacts/metrics.json"));
    assert_eq!(metrics["outcome"], "succeeded_with_issues", "{metrics}");
}

#[test]
fn an_invalid_workflow_exits_2_and_runs_nothing() {
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: broken
steps:
  - {id: first, gate: "touch ran"}
  - {id: second, gate: "true", timout: 5m}
"#,
    );
    let result = project.run_workflow("w.yaml", &[]);
    result.assert_code(2);
    assert!(result.stderr.contains("w.yaml:5:32"), "{}", result.stderr);
    assert!(
        result.stderr.contains("timeout"),
        "did-you-mean: {}",
        result.stderr
    );
    assert!(!project.path().join("ran").exists());
    assert!(
        !project.artifacts().exists(),
        "no artifacts for a run that never started"
    );
}

#[test]
fn outputs_conditions_and_retries_flow_between_steps() {
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: flow
steps:
  - {id: build, gate: "echo version=1.2.3 >> \"$AGENT_ORCH_OUTPUT\""}
  - {id: use, gate: "test {{ steps.build.outputs.version | shell_quote }} = 1.2.3"}
  - {id: never, gate: "touch never-ran", if: "steps.build.outputs.version == '9.9.9'"}
  - id: flaky
    retries: 2
    gate: "echo x >> tries; test $(wc -l < tries) -ge 2"
"#,
    );
    project.run_workflow("w.yaml", &[]).assert_code(0);
    assert!(!project.path().join("never-ran").exists());
    assert_eq!(project.read("tries").lines().count(), 2);
}

#[test]
fn a_step_timeout_kills_the_command() {
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: slow
safety: {max_iterations: 1}
steps:
  - {id: hang, gate: "sleep 60", timeout: 1s}
"#,
    );
    let started = Instant::now();
    let result = project.run_workflow("w.yaml", &[]);
    result.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(project.read("artifacts/junit.xml").contains("timed out"));
}

#[test]
fn dry_run_executes_nothing_and_says_what_would_run() {
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: dry
vars: {port: 9}
steps:
  - {id: a, gate: "touch ran"}
  - {id: b, gate: "echo {{ steps.a.outputs.version }}"}
  - {id: c, verify: {http: {url: "http://127.0.0.1:{{ vars.port }}/health"}}}
"#,
    );
    let result = project.run_workflow("w.yaml", &["--dry-run"]);
    result.assert_code(0);
    assert!(!project.path().join("ran").exists());
    let junit = project.read("artifacts/junit.xml");
    assert!(junit.contains("would run `touch ran`"), "{junit}");
    assert!(
        junit.contains("would run `echo {{ steps.a.outputs.version }}`"),
        "a value only a run produces stays as written: {junit}"
    );
    assert!(
        junit.contains("would check GET http://127.0.0.1:9/health"),
        "{junit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_values_render_with_vars_before_a_verify_step_reads_them() {
    let service = HttpService::start(Script::default()).await;
    let project = Project::new();
    project.file(
        "w.yaml",
        r#"
name: templated-environment
environments:
  local: {url: "http://127.0.0.1:{{ vars.port }}", health: "{{ env.url }}/json"}
vars: {port: 1}
steps:
  - id: health
    verify: {http: {url: "{{ env.health }}", expect_json: {/status: ok}}}
"#,
    );
    let port = format!("port={}", service.addr.port());
    let result = tokio::task::spawn_blocking(move || {
        let result = project.run_workflow("w.yaml", &["--var", &port]);
        (result, project)
    });
    let (result, project) = result.await.unwrap();
    result.assert_code(0);
    assert_eq!(service.hits(), ["/json"]);
    let junit = project.read("artifacts/junit.xml");
    assert!(!junit.contains("<failure"), "{junit}");
}

/// `agent-orch run workflow.yaml --dry-run` (plus `extra`) signing in with a managed identity
/// whose Key Vault traffic goes to `azure` (a fake, or an address nobody answers).
fn dry_run_with_vault(project: &Project, azure: &str, extra: &[&str]) -> RunResult {
    let artifacts = project.artifacts();
    let mut args = vec![
        "run",
        "workflow.yaml",
        "--artifacts",
        artifacts.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = project
        .command(&args)
        .env("AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE", azure)
        .env(
            "IDENTITY_ENDPOINT",
            format!("http://localhost:41{}", managed_identity_fake::PATH),
        )
        .env("IDENTITY_HEADER", IDENTITY_HEADER)
        .output()
        .unwrap();
    RunResult::from(output)
}

#[test]
fn a_dry_run_needs_no_vault_and_shows_secrets_as_placeholders() {
    let project = keyvault::project(keyvault::WORKFLOW);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let result = dry_run_with_vault(&project, &unreachable, &["--dry-run"]);
    result.assert_code(0);
    let junit = project.read("artifacts/junit.xml");
    assert!(
        junit.contains("inline=&lt;secret:db-password&gt;"),
        "the secret's place is shown: {junit}"
    );

    // Against a vault that answers, a dry run still asks it nothing; the real run does.
    let server = keyvault::vault(false);
    dry_run_with_vault(&project, &server.url(), &["--dry-run"]).assert_code(0);
    let heard = server.requests();
    assert!(heard.is_empty(), "a dry run needs no network: {heard:?}");
    dry_run_with_vault(&project, &server.url(), &[]).assert_code(0);
    assert!(
        !server.requests_to("/secrets/").is_empty(),
        "{:?}",
        server.requests()
    );
    let leak_log = project.read("artifacts/steps/1-steps/leak.log");
    assert!(leak_log.contains("inline=***"), "{leak_log}");
}

#[cfg(unix)]
mod signals {
    use super::*;
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    fn wait_for_file(path: &std::path::Path) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.ends_with('\n')
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(pid: i32) -> bool {
        kill(Pid::from_raw(pid), None).is_ok()
    }

    fn interrupt_mid_step(signal: Signal) {
        let project = Project::new();
        project.file(
            "w.yaml",
            r#"
name: interrupted
steps:
  - {id: long, gate: "sleep 300 & echo $! > grandchild.pid; wait"}
on_give_up:
  - {id: cleanup, gate: "touch cleanup-ran"}
"#,
        );
        let artifacts = project.artifacts();
        let mut child = project
            .command(&["run", "w.yaml", "--quiet", "--artifacts"])
            .arg(&artifacts)
            .spawn()
            .expect("spawn");
        let grandchild: i32 = wait_for_file(&project.path().join("grandchild.pid"))
            .trim()
            .parse()
            .expect("pid");
        assert!(alive(grandchild));

        let sent = Instant::now();
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal");
        let status = child.wait().expect("wait");
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "{:?}",
            sent.elapsed()
        );
        assert_eq!(status.code(), Some(130));

        // The whole process group died with the step: no orphan sleep.
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(grandchild), "grandchild {grandchild} survived");
        assert!(
            project.path().join("cleanup-ran").exists(),
            "on_give_up runs after an interrupt"
        );
        let metrics = json(&project.read("artifacts/metrics.json"));
        assert_eq!(metrics["outcome"], "interrupted");
        assert!(project.read("artifacts/junit.xml").contains("long"));
    }

    #[test]
    fn ctrl_c_kills_the_step_group_runs_on_give_up_and_exits_130() {
        interrupt_mid_step(Signal::SIGINT);
    }

    #[test]
    fn sigterm_behaves_like_ctrl_c() {
        interrupt_mid_step(Signal::SIGTERM);
    }
}

/// A gate printing 256 MiB: the log gets every byte, agent-orch's own memory stays small.
/// Peak RSS is read from the live process (`VmHWM` only grows), sampled until it exits.
#[cfg(target_os = "linux")]
#[test]
fn a_huge_output_streams_to_the_log_in_bounded_memory() {
    const BYTES: u64 = 256 << 20;
    let project = Project::new();
    project.file(
        "w.yaml",
        &format!(
            "name: huge\nsteps:\n  - {{id: big, gate: \"yes 'a line of output' | head -c {BYTES}\"}}\n"
        ),
    );
    let artifacts = project.artifacts();
    let mut child = project
        .command(&["run", "w.yaml", "--quiet", "--artifacts"])
        .arg(&artifacts)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib: u64 = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        }) {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "{status}");
    let log = std::fs::metadata(artifacts.join("steps/1-steps/big.log")).expect("step log");
    assert_eq!(log.len(), BYTES);
    assert!(peak_kib > 0, "VmHWM was never read");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
}

/// The default artifacts folder is relative to where agent-orch runs; a step working in a
/// sub-folder must still find its outputs file and logs.
#[test]
fn outputs_work_from_a_step_workdir_with_the_default_artifacts_folder() {
    let project = Project::new();
    project
        .file("app/README", "a sub-folder the build runs in\n")
        .file(
            "w.yaml",
            r#"
name: relative
steps:
  - id: build
    gate: {run: "echo version=2.0.0 >> \"$AGENT_ORCH_OUTPUT\"", workdir: app}
  - {id: use, gate: "test {{ steps.build.outputs.version }} = 2.0.0"}
"#,
        );
    let result = project.run(&["run", "w.yaml", "--quiet"]);
    result.assert_code(0);
    let runs = std::fs::read_dir(project.path().join(".agent-orch/runs"))
        .expect("default artifacts folder")
        .count();
    assert_eq!(runs, 1);
}

#[test]
fn outputs_are_written_after_a_success_and_an_unrenderable_one_fails_the_run() {
    let project = Project::new();
    let workflow = |output: &str| {
        format!(
            r#"
name: outputs
steps:
  - {{id: build, gate: "echo version=1.4.2 >> \"$AGENT_ORCH_OUTPUT\""}}
on_success:
  - {{id: announce, gate: "echo released"}}
outputs:
  version: "{output}"
"#
        )
    };
    project.file("w.yaml", &workflow("{{ steps.build.outputs.version }}"));
    project.run_workflow("w.yaml", &[]).assert_code(0);
    assert_eq!(
        json(&project.read("artifacts/outputs.json")),
        serde_json::json!({"version": "1.4.2"})
    );
    let run_log = project.read("artifacts/run.log");
    assert!(run_log.contains("on_success/announce passed"), "{run_log}");
    assert!(run_log.contains("outputs: version=1.4.2"), "{run_log}");

    // Checked at load time as far as it can be; the gate never writes `tag`.
    project.file("w.yaml", &workflow("{{ steps.build.outputs.tag }}"));
    std::fs::remove_dir_all(project.artifacts()).unwrap();
    project.run_workflow("w.yaml", &[]).assert_code(1);
    let metrics = json(&project.read("artifacts/metrics.json"));
    let reason = metrics["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("output `version` cannot be rendered:"),
        "{reason}"
    );
    assert!(!project.artifacts().join("outputs.json").exists());
}

#[test]
fn a_top_level_error_masks_a_secret_it_quotes() {
    let project = Project::new();
    let secret = "s3cr3t-value-0123456789";
    let output = project
        .command(&["run", &format!("{secret}.yaml")])
        .env("DEPLOY_TOKEN", secret)
        .output()
        .expect("binary runs");
    let result = RunResult::from(output);
    result.assert_code(2);
    assert!(result.stderr.contains("error"), "{}", result.stderr);
    assert!(result.stderr.contains(".yaml"), "{}", result.stderr);
    assert!(!result.stderr.contains(secret), "{}", result.stderr);
}
