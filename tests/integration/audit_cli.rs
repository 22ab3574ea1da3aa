//! `agent-orch audit verify`: a run's audit log checks out against the head the run printed,
//! and every kind of tampering (an edited line, a removed line, a rewritten or cut-off tail)
//! is refused with exit 1.

use crate::support::cli::{Project, RunResult};

/// Runs a two-step workflow and returns the head it printed at the end.
fn run_and_read_head(project: &Project) -> String {
    project.file(
        "w.yaml",
        r#"
name: audited
steps:
  - {id: build, gate: "echo built"}
  - {id: test, gate: "echo 3 tests passed"}
"#,
    );
    let result = project.run_workflow("w.yaml", &[]);
    result.assert_code(0);
    let line = result
        .stderr
        .lines()
        .find(|line| line.starts_with("audit head "))
        .unwrap_or_else(|| panic!("no audit head line:\n{}", result.stderr));
    let head = line["audit head ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(head.len(), 64, "{line}");
    head
}

fn verify(project: &Project, head: Option<&str>) -> RunResult {
    let artifacts = project.artifacts();
    let mut args = vec!["audit", "verify", artifacts.to_str().unwrap()];
    if let Some(head) = head {
        args.extend(["--head", head]);
    }
    project.run(&args)
}

#[test]
fn an_untouched_log_verifies_against_the_printed_head() {
    let project = Project::new();
    let head = run_and_read_head(&project);
    let lines = project.read("artifacts/audit.jsonl").lines().count();

    let result = verify(&project, Some(&head));
    result.assert_code(0);
    assert!(
        result.stdout.contains(&format!(
            "{lines} lines, chain intact, head matches, head {head}"
        )),
        "{}",
        result.stdout
    );
    // The file itself may be named too.
    let file = project.artifacts().join("audit.jsonl");
    project
        .run(&["audit", "verify", file.to_str().unwrap()])
        .assert_code(0);
}

#[test]
fn an_edited_line_fails_at_the_line_after_it() {
    let project = Project::new();
    let head = run_and_read_head(&project);
    let path = project.artifacts().join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let tampered = text.replacen("3 tests passed", "4 tests passed", 1);
    let edited = text
        .lines()
        .zip(tampered.lines())
        .position(|(a, b)| a != b)
        .expect("the log holds the gate's output")
        + 1;
    std::fs::write(&path, tampered).unwrap();

    let result = verify(&project, Some(&head));
    result.assert_code(1);
    assert!(
        result
            .stderr
            .contains(&format!("does not verify at line {}", edited + 1)),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("does not match"),
        "{}",
        result.stderr
    );
}

#[test]
fn a_cut_off_tail_keeps_its_chain_but_not_its_head() {
    let project = Project::new();
    let head = run_and_read_head(&project);
    let path = project.artifacts().join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&path, lines[..lines.len() - 1].join("\n") + "\n").unwrap();

    // Without the recorded head the shorter chain still holds together...
    verify(&project, None).assert_code(0);
    // ...with it, the cut is found.
    let result = verify(&project, Some(&head));
    result.assert_code(1);
    assert!(
        result.stderr.contains("is not the recorded head"),
        "{}",
        result.stderr
    );
}

#[test]
fn a_missing_log_is_a_clear_error() {
    let project = Project::new();
    let result = project.run(&["audit", "verify", "no-such-run"]);
    result.assert_code(1);
    assert!(
        result.stderr.contains("no-such-run/audit.jsonl") || result.stderr.contains("no-such-run"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("failed to read"),
        "{}",
        result.stderr
    );
}
