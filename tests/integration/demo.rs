//! `agent-orch demo` end to end: the README's first command, against the in-process fake
//! cluster and the sample app.

use std::net::TcpListener;
use std::process::Command;

use crate::support::tools;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

fn demo(extra: &[&str]) -> (Option<i32>, String, serde_json::Value, tempfile::TempDir) {
    // The sample app's gates and service are Python.
    tools::tool("python3");
    let artifacts = tempfile::tempdir().expect("temp dir");
    let port = format!("port={}", free_port());
    let output = Command::new(env!("CARGO_BIN_EXE_agent-orch"))
        .args([
            "demo",
            "--quiet",
            "--color",
            "never",
            "--var",
            &port,
            "--artifacts",
        ])
        .arg(artifacts.path())
        .args(extra)
        .env_remove("AGENT_ORCH_ARTIFACTS")
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let metrics = std::fs::read_to_string(artifacts.path().join("metrics.json"))
        .map(|text| serde_json::from_str(&text).expect("metrics.json is JSON"))
        .unwrap_or_else(|err| panic!("no metrics.json ({err}):\n{stderr}"));
    (output.status.code(), stderr, metrics, artifacts)
}

#[test]
fn the_demo_deploys_starts_and_verifies_the_sample_app() {
    let (code, stderr, metrics, artifacts) = demo(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(metrics["outcome"], "succeeded", "{metrics}");
    let deploy_log = std::fs::read_to_string(artifacts.path().join("steps/1-steps/deploy.log"))
        .expect("deploy log");
    assert!(
        deploy_log.contains("rolled out fleet-sample"),
        "{deploy_log}"
    );
    let junit = std::fs::read_to_string(artifacts.path().join("junit.xml")).expect("junit");
    for step in [
        "lint",
        "test",
        "build",
        "deploy",
        "start",
        "health",
        "dashboard",
    ] {
        assert!(
            junit.contains(&format!(r#"name="{step}""#)),
            "{step} in {junit}"
        );
    }
}

#[test]
fn a_broken_image_is_caught_and_rolled_back() {
    let (code, stderr, metrics, artifacts) = demo(&["--break", "crashloop"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(metrics["outcome"], "failed", "{metrics}");
    assert!(stderr.contains("CrashLoopBackOff"), "{stderr}");
    let undo = std::fs::read_to_string(artifacts.path().join("steps/2-on_give_up/undo.log"))
        .expect("rollback log");
    assert!(undo.contains("fleet-sample"), "{undo}");
}

/// A `--var` that closes the manifest's quoted string and starts a document of its own would
/// add a ConfigMap to the deploy; the deploy refuses the rendering and applies nothing.
#[test]
fn a_var_that_adds_a_kubernetes_object_is_refused() {
    let hostile = "region=local\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: injected}\ndata:\n  a: \"b";
    let (code, stderr, metrics, artifacts) = demo(&["--var", hostile]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(metrics["outcome"], "failed", "{metrics}");
    let deploy_log = std::fs::read_to_string(artifacts.path().join("steps/1-steps/deploy.log"))
        .unwrap_or_default();
    let junit = std::fs::read_to_string(artifacts.path().join("junit.xml")).expect("junit");
    let expected = "refused manifest `examples/sample-app/k8s/deployment.yaml`: the value of \
                    `{{ vars.region }}` (line 8) adds a document (the template has 3, the \
                    rendering 4)";
    assert!(junit.contains(expected), "{junit}");
    assert!(!deploy_log.contains("injected"), "{deploy_log}");
    assert!(!deploy_log.contains("rolled out"), "{deploy_log}");
}
