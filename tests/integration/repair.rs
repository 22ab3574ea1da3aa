//! The repair loop end to end: the real binary runs a broken sample project, its fix and review
//! agents talk HTTP to the local OpenAI fake, and the tests check the project's files, the exit
//! code, `audit.jsonl`, `patches/`, `metrics.json` and what the fake was sent.

use std::path::Path;

use serde_json::Value;

use crate::support::cli::{Project, RunResult};
use crate::support::openai_fake::{OpenAiFake, ReceivedRequest, Reply, Route};

const API_KEY: &str = "sk-repair-test-0123456789abcdef";
const DB_PASSWORD: &str = "pg-Pa55w0rd-do-not-leak";

const BROKEN_GREETING: &str =
    "#!/bin/sh\n# Prints the greeting the service answers with.\necho \"Hello, wrld\"\n";
const FIXED_GREETING: &str =
    "#!/bin/sh\n# Prints the greeting the service answers with.\necho \"Hello, world\"\n";
const CHECK: &str = "#!/bin/sh\nout=$(sh src/greet.sh)\nif [ \"$out\" != \"Hello, world\" ]; then\n  echo \"FAIL: src/greet.sh:3 printed '$out', expected 'Hello, world'\"\n  exit 1\nfi\necho ok\n";
const MIGRATION: &str = "CREATE TABLE users (id int primary key);\n";

/// The fix the fixer should find, as a model would write it: fenced, with prose.
const GOOD_FIX: &str = "The greeting has a typo.\n\n```diff\n--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,3 +1,3 @@\n #!/bin/sh\n # Prints the greeting the service answers with.\n-echo \"Hello, wrld\"\n+echo \"Hello, world\"\n```\n";

/// A change that touches the code and fixes nothing.
const USELESS_FIX: &str = "```diff\n--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,3 +1,3 @@\n #!/bin/sh\n-# Prints the greeting the service answers with.\n+# Prints the greeting.\n echo \"Hello, wrld\"\n```\n";

/// Makes the check accept the bug: what a reviewer must reject.
const WEAKEN_TEST: &str = "```diff\n--- a/tests/check.sh\n+++ b/tests/check.sh\n@@ -1,3 +1,3 @@\n #!/bin/sh\n out=$(sh src/greet.sh)\n-if [ \"$out\" != \"Hello, world\" ]; then\n+if [ \"$out\" != \"Hello, wrld\" ]; then\n```\n";

const DELETE_MIGRATION: &str = "The migration breaks the test database; remove it.\n\n```diff\n--- a/migrations/001_init.sql\n+++ /dev/null\n@@ -1 +0,0 @@\n-CREATE TABLE users (id int primary key);\n```\n";

const ADD_DROP: &str = "```diff\n--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,3 +1,4 @@\n #!/bin/sh\n # Prints the greeting the service answers with.\n-echo \"Hello, wrld\"\n+psql -c 'DROP TABLE sessions' >/dev/null 2>&1 || true\n+echo \"Hello, world\"\n```\n";

const SUGGESTION: &str = "Leave tests/check.sh alone and correct the typo in src/greet.sh.";

fn approve() -> Reply {
    Reply::text(
        r#"{"approved": true, "reason": "fixes the typo and nothing else", "risk": "low", "suggestion": null}"#,
    )
}

fn reject() -> Reply {
    Reply::text(&format!(
        r#"{{"approved": false, "reason": "the patch weakens the test instead of fixing the code", "risk": "high", "suggestion": "{SUGGESTION}"}}"#
    ))
}

/// The broken sample project: a greeting script with a typo and the check that catches it.
fn broken_project(safety: &str) -> Project {
    let project = Project::new();
    project
        .file("src/greet.sh", BROKEN_GREETING)
        .file("tests/check.sh", CHECK)
        .file("migrations/001_init.sql", MIGRATION)
        .file(
            "w.yaml",
            &format!(
                r#"
name: repair-demo
agents:
  fixer: {{model: gpt-4o, temperature: 0.2}}
  reviewer: {{model: gpt-4o-mini}}
safety: {safety}
steps:
  - {{id: test, gate: "echo connecting with $DB_PASSWORD; sh tests/check.sh"}}
repair:
  - {{id: propose, fix: {{agent: fixer}}}}
  - {{id: approve, review: {{agent: reviewer}}}}
"#
            ),
        );
    project
}

const SAFETY: &str = r#"{max_iterations: 4, no_progress_threshold: 2, never_delete: ["migrations/**"], require_confirmation: ["DROP"]}"#;

/// Runs the workflow with the agents pointed at `fake` (or at a closed port when `None`).
async fn run(project: &Project, fake: Option<&OpenAiFake>, extra: &[&str]) -> RunResult {
    let artifacts = project.artifacts();
    let artifacts = artifacts.to_str().unwrap().to_owned();
    let mut args = vec!["run", "w.yaml", "--artifacts", &artifacts, "--quiet"];
    args.extend_from_slice(extra);
    let mut command = project.command(&args);
    let base_url = fake.map_or_else(|| "http://127.0.0.1:9/v1".to_owned(), OpenAiFake::base_url);
    command
        .env("OPENAI_BASE_URL", base_url)
        .env("OPENAI_API_KEY", API_KEY)
        .env("DB_PASSWORD", DB_PASSWORD);
    // The fake answers on this runtime while the binary runs: wait for it off the runtime.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("binary runs");
    RunResult::from(output)
}

fn audit(project: &Project) -> Vec<Value> {
    project
        .read("artifacts/audit.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The decisions of the run, as `(iteration, kind, detail)`.
fn decisions(project: &Project) -> Vec<(u64, String, Value)> {
    audit(project)
        .into_iter()
        .filter(|event| event["event"] == "decision")
        .map(|event| {
            (
                event["iteration"].as_u64().unwrap(),
                event["kind"].as_str().unwrap().to_owned(),
                event["detail"].clone(),
            )
        })
        .collect()
}

fn kinds(project: &Project) -> Vec<String> {
    decisions(project)
        .into_iter()
        .map(|(_, kind, _)| kind)
        .collect()
}

fn decision(project: &Project, kind: &str) -> Value {
    decisions(project)
        .into_iter()
        .find(|(_, k, _)| k == kind)
        .map(|(_, _, detail)| detail)
        .unwrap_or_else(|| panic!("no `{kind}` decision in {:?}", kinds(project)))
}

fn metrics(project: &Project) -> Value {
    serde_json::from_str(&project.read("artifacts/metrics.json")).unwrap()
}

fn is_fixer(request: &ReceivedRequest) -> bool {
    request.message("system").starts_with("You repair")
}

fn fixer_requests(fake: &OpenAiFake) -> Vec<ReceivedRequest> {
    fake.requests().into_iter().filter(is_fixer).collect()
}

fn reviewer_requests(fake: &OpenAiFake) -> Vec<ReceivedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| !is_fixer(r))
        .collect()
}

#[track_caller]
fn assert_no_secret_sent(fake: &OpenAiFake) {
    for request in fake.requests() {
        for secret in [DB_PASSWORD, API_KEY] {
            assert!(
                !request.raw_body.contains(secret),
                "a request carried `{secret}`:\n{}",
                request.raw_body
            );
        }
    }
}

fn patch_file(project: &Project, iteration: u32) -> String {
    project.read(&format!("artifacts/patches/iteration-{iteration}.diff"))
}

fn exists(project: &Project, relative: &str) -> bool {
    Path::new(project.path()).join(relative).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_project_is_fixed_reviewed_applied_and_passes() {
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, approve());
    let project = broken_project(SAFETY);

    run(&project, Some(&fake), &[]).await.assert_code(0);

    assert_eq!(project.read("src/greet.sh"), FIXED_GREETING);
    assert_eq!(
        kinds(&project),
        [
            "retry",
            "fix.proposal",
            "policy.decision",
            "review.verdict",
            "patch.applied"
        ]
    );
    let policy = decision(&project, "policy.decision");
    assert_eq!(policy["decision"]["verdict"], "allow");
    assert_eq!(policy["decision"]["files"][0], "src/greet.sh");
    let applied = decision(&project, "patch.applied");
    let file = &applied["files"][0];
    assert_eq!(file["path"], "src/greet.sh");
    assert_eq!(file["change"], "modified");
    assert_eq!(
        file["after_sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(FIXED_GREETING))
    );
    assert_eq!(applied["patch_sha256"], policy["decision"]["patch_sha256"]);
    let verdict = decision(&project, "review.verdict");
    assert_eq!(verdict["verdict"]["approved"], true);
    assert!(
        verdict["prompt"]
            .as_str()
            .unwrap()
            .contains("+echo \"Hello, world\""),
        "the reviewer sees the patch: {verdict}"
    );
    let diff = patch_file(&project, 1);
    assert!(
        diff.contains("+++ b/src/greet.sh") && diff.contains("+echo \"Hello, world\""),
        "{diff}"
    );

    // 120 + 30 tokens per scripted reply, fixer and reviewer.
    let metrics = metrics(&project);
    assert_eq!(metrics["outcome"], "succeeded", "{metrics}");
    assert_eq!(metrics["iterations"], 2, "{metrics}");
    assert_eq!(metrics["tokens"]["prompt"], 240, "{metrics}");
    assert_eq!(metrics["tokens"]["completion"], 60, "{metrics}");

    let fixer = fixer_requests(&fake);
    assert_eq!(fixer.len(), 1);
    let prompt = fixer[0].message("user");
    assert!(
        prompt.contains("FAIL: src/greet.sh:3"),
        "the failing line: {prompt}"
    );
    assert!(
        prompt.contains("echo \"Hello, wrld\""),
        "the source it names: {prompt}"
    );
    assert_eq!(reviewer_requests(&fake).len(), 1);
    assert_no_secret_sent(&fake);

    let summary = project.read("artifacts/summary.md");
    assert!(
        summary.contains("applied patches/iteration-1.diff"),
        "{summary}"
    );
    assert!(summary.contains("approved (low risk)"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_carries_its_suggestion_into_the_next_fix() {
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::text(WEAKEN_TEST))
        .push(Route::OpenAi, reject())
        .push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, approve());
    let project = broken_project(SAFETY);

    run(&project, Some(&fake), &[]).await.assert_code(0);

    assert_eq!(
        project.read("tests/check.sh"),
        CHECK,
        "the rejected patch was not applied"
    );
    assert_eq!(project.read("src/greet.sh"), FIXED_GREETING);
    let fixer = fixer_requests(&fake);
    assert_eq!(fixer.len(), 2);
    assert!(!fixer[0].message("user").contains(SUGGESTION));
    let second = fixer[1].message("user");
    assert!(
        second.contains(SUGGESTION),
        "the suggestion is carried over: {second}"
    );
    assert!(
        second.contains("-if [ \"$out\" != \"Hello, world\" ]; then"),
        "the rejected patch is listed as tried: {second}"
    );
    let iterations: Vec<(u64, String)> = decisions(&project)
        .into_iter()
        .filter(|(_, kind, _)| kind == "review.verdict" || kind == "patch.applied")
        .map(|(iteration, kind, _)| (iteration, kind))
        .collect();
    assert_eq!(
        iterations,
        [
            (1, "review.verdict".to_owned()),
            (2, "review.verdict".to_owned()),
            (2, "patch.applied".to_owned())
        ]
    );
    assert!(!exists(&project, "artifacts/patches/iteration-1.diff"));
    assert!(patch_file(&project, 2).contains("src/greet.sh"));
    assert_eq!(metrics(&project)["iterations"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_changes_nothing_is_reverted_and_the_run_stops() {
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::text(USELESS_FIX))
        .push(Route::OpenAi, approve());
    let project = broken_project(SAFETY);

    let result = run(&project, Some(&fake), &[]).await;
    result.assert_code(1);
    assert!(result.stderr.contains("no progress"), "{}", result.stderr);

    assert_eq!(
        project.read("src/greet.sh"),
        BROKEN_GREETING,
        "the useless patch was reverted"
    );
    let applied = decision(&project, "patch.applied");
    let reverted = decision(&project, "patch.reverted");
    assert_eq!(reverted["patch_sha256"], applied["patch_sha256"]);
    assert!(
        reverted["reason"]
            .as_str()
            .unwrap()
            .contains("same fingerprint"),
        "{reverted}"
    );
    assert_eq!(
        reverted["files"][0]["before_sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(BROKEN_GREETING))
    );
    let kinds = kinds(&project);
    let position = |kind: &str| kinds.iter().position(|k| k == kind).unwrap();
    assert!(
        position("patch.reverted") < position("stop.no_progress"),
        "{kinds:?}"
    );
    assert!(patch_file(&project, 1).contains("+# Prints the greeting."));
    assert_eq!(fixer_requests(&fake).len(), 1, "no fix after the stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_migration_is_blocked_although_the_reviewer_would_approve() {
    let fake = OpenAiFake::start().await;
    // Both attempts delete the migration; the reviewer's approval is scripted and never asked.
    fake.push(Route::OpenAi, Reply::text(DELETE_MIGRATION))
        .push(Route::OpenAi, Reply::text(DELETE_MIGRATION))
        .push(Route::OpenAi, approve());
    let project = broken_project(
        r#"{max_iterations: 3, never_delete: ["migrations/**"], require_confirmation: ["DROP"]}"#,
    );

    let result = run(&project, Some(&fake), &[]).await;
    result.assert_code(1);

    assert_eq!(project.read("migrations/001_init.sql"), MIGRATION);
    let policy = decision(&project, "policy.decision");
    assert_eq!(policy["decision"]["verdict"], "deny", "{policy}");
    assert_eq!(policy["decision"]["violations"][0]["rule"], "never_delete");
    assert_eq!(
        policy["decision"]["violations"][0]["pattern"],
        "migrations/**"
    );
    assert!(!kinds(&project).iter().any(|k| k == "patch.applied"));
    assert!(
        reviewer_requests(&fake).is_empty(),
        "a denied patch never reaches the reviewer"
    );
    assert!(!exists(&project, "artifacts/patches/iteration-1.diff"));
    // The denial is told to the next attempt, once.
    let fixer = fixer_requests(&fake);
    assert_eq!(fixer.len(), 2);
    let second = fixer[1].message("user");
    assert!(
        second.contains("patch denied by policy") && second.contains("migrations/**"),
        "{second}"
    );
    assert_eq!(
        decisions(&project)
            .iter()
            .filter(|(_, kind, _)| kind == "policy.decision")
            .count(),
        2
    );
    assert!(
        result.stderr.contains("reached max iterations (3)"),
        "{}",
        result.stderr
    );
    assert_eq!(metrics(&project)["outcome"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_require_confirmation_match_stops_the_run_unless_approved() {
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::text(ADD_DROP));
    let project = broken_project(SAFETY);

    let result = run(&project, Some(&fake), &[]).await;
    result.assert_code(1);
    assert!(
        result.stderr.contains("`DROP` in `src/greet.sh:3`") && result.stderr.contains("--approve"),
        "{}",
        result.stderr
    );
    assert_eq!(project.read("src/greet.sh"), BROKEN_GREETING);
    assert!(
        kinds(&project)
            .iter()
            .any(|k| k == "stop.approval_required")
    );
    assert!(reviewer_requests(&fake).is_empty());

    // The same patch with a human's approval goes on to the reviewer and is applied.
    fake.push(Route::OpenAi, Reply::text(ADD_DROP))
        .push(Route::OpenAi, approve());
    run(&project, Some(&fake), &["--approve"])
        .await
        .assert_code(0);
    assert!(project.read("src/greet.sh").contains("DROP TABLE sessions"));
    let policy = decision(&project, "policy.decision");
    assert_eq!(policy["decision"]["verdict"], "allow");
    assert_eq!(policy["decision"]["human_approved"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_then_succeed() {
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::rate_limited(0))
        .push(Route::OpenAi, Reply::server_error())
        .push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, approve());
    let project = broken_project(SAFETY);

    run(&project, Some(&fake), &[]).await.assert_code(0);

    assert_eq!(project.read("src/greet.sh"), FIXED_GREETING);
    assert_eq!(
        fixer_requests(&fake).len(),
        3,
        "two retries, then the answer"
    );
    assert_eq!(reviewer_requests(&fake).len(), 1);
    assert_eq!(metrics(&project)["tokens"]["prompt"], 240);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_replies_fail_the_fix_step_and_the_reason_goes_back_once() {
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::garbage())
        .push(
            Route::OpenAi,
            Reply::text("You should fix the greeting; it has a typo somewhere."),
        )
        .push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, approve());
    let project = broken_project(SAFETY);

    run(&project, Some(&fake), &[]).await.assert_code(0);

    assert_eq!(project.read("src/greet.sh"), FIXED_GREETING);
    let fixer = fixer_requests(&fake);
    assert_eq!(fixer.len(), 3);
    let no_diff = "no unified diff found";
    assert!(!fixer[1].message("user").contains(no_diff));
    assert!(
        fixer[2].message("user").contains(no_diff),
        "the parse failure is told to the next attempt: {}",
        fixer[2].message("user")
    );
    let unusable = decision(&project, "patch.unusable");
    assert_eq!(unusable["stage"], "parse");
    let junit = project.read("artifacts/junit.xml");
    assert!(junit.contains("not a chat completion"), "{junit}");
    assert_eq!(metrics(&project)["iterations"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_budget_stops_the_run_on_reported_usage() {
    let fake = OpenAiFake::start().await;
    fake.push(
        Route::OpenAi,
        Reply::Completion {
            content: GOOD_FIX.to_owned(),
            prompt_tokens: 5000,
            completion_tokens: 40,
        },
    )
    .push(Route::OpenAi, approve());
    let project = broken_project(&SAFETY.replace("}", ", budget: {tokens: 4000}}"));

    let result = run(&project, Some(&fake), &[]).await;
    result.assert_code(1);
    assert!(
        result.stderr.contains("token budget used up: 5040 of 4000"),
        "{}",
        result.stderr
    );
    assert_eq!(project.read("src/greet.sh"), BROKEN_GREETING);
    assert!(reviewer_requests(&fake).is_empty());
    assert!(kinds(&project).iter().any(|k| k == "stop.budget"));
    assert_eq!(metrics(&project)["tokens"]["prompt"], 5000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_replays_offline_with_the_same_outcome() {
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::text(WEAKEN_TEST))
        .push(Route::OpenAi, reject())
        .push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, approve());
    let tapes = tempfile::tempdir().unwrap();
    let tape = tapes.path().join("run.jsonl");
    let tape = tape.to_str().unwrap();
    let recorded = broken_project(SAFETY);
    run(&recorded, Some(&fake), &["--record", tape])
        .await
        .assert_code(0);
    let tape_text = std::fs::read_to_string(tape).unwrap();
    assert_eq!(tape_text.lines().count(), 4);
    assert!(!tape_text.contains(DB_PASSWORD) && !tape_text.contains(API_KEY));
    fake.stop().await;

    let replayed = broken_project(SAFETY);
    run(&replayed, None, &["--replay", tape])
        .await
        .assert_code(0);

    assert_eq!(replayed.read("src/greet.sh"), FIXED_GREETING);
    assert_eq!(kinds(&replayed), kinds(&recorded));
    assert_eq!(patch_file(&replayed, 2), patch_file(&recorded, 2));
    assert_eq!(metrics(&replayed)["tokens"], metrics(&recorded)["tokens"]);
    let hashes = |project: &Project| {
        decisions(project)
            .into_iter()
            .filter_map(|(_, _, detail)| detail["prompt_hash"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(hashes(&replayed).len(), 4);
    assert_eq!(
        hashes(&replayed),
        hashes(&recorded),
        "the same prompts, deterministically"
    );
}

/// Context lines that are nowhere in the file.
const STALE_FIX: &str = "```diff\n--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,3 +1,3 @@\n #!/bin/bash\n # Says hello to whoever calls.\n-echo \"Hello, wrld!!\"\n+echo \"Hello, world\"\n```\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hunk_that_does_not_apply_is_reported_back_once_with_the_reason() {
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::text(STALE_FIX))
        .push(Route::OpenAi, Reply::text(WEAKEN_TEST))
        .push(Route::OpenAi, reject())
        .push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, approve());
    let project = broken_project(SAFETY);

    run(&project, Some(&fake), &[]).await.assert_code(0);

    assert_eq!(project.read("src/greet.sh"), FIXED_GREETING);
    let unusable = decision(&project, "patch.unusable");
    assert_eq!(unusable["stage"], "apply");
    let reason = unusable["reason"].as_str().unwrap();
    assert!(
        reason.contains("does not apply") && reason.contains("src/greet.sh"),
        "{reason}"
    );
    let fixer = fixer_requests(&fake);
    assert_eq!(fixer.len(), 3);
    let told = |request: &ReceivedRequest| {
        request
            .message("user")
            .contains("Your previous patch could not be applied:\n<<<UNTRUSTED apply error")
    };
    assert!(!told(&fixer[0]));
    assert!(told(&fixer[1]), "{}", fixer[1].message("user"));
    assert!(!told(&fixer[2]), "only once: {}", fixer[2].message("user"));
    assert!(fixer[2].message("user").contains(SUGGESTION));
    assert_eq!(
        reviewer_requests(&fake).len(),
        2,
        "the patch that does not apply is never reviewed"
    );
}

/// Breaks the script's syntax: the failure moves to an earlier step.
const BREAKING_FIX: &str = "```diff\n--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,3 +1,3 @@\n #!/bin/sh\n # Prints the greeting the service answers with.\n-echo \"Hello, wrld\"\n+if echo \"Hello, world\"\n```\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_makes_things_worse_is_reverted_and_the_fixer_told() {
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::text(BREAKING_FIX))
        .push(Route::OpenAi, approve())
        .push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, approve());
    let project = broken_project(SAFETY);
    let workflow = project.read("w.yaml").replace(
        "steps:\n",
        "steps:\n  - {id: syntax, gate: \"sh -n src/greet.sh\"}\n",
    );
    project.file("w.yaml", &workflow);

    run(&project, Some(&fake), &[]).await.assert_code(0);

    assert_eq!(project.read("src/greet.sh"), FIXED_GREETING);
    let reverted = decisions(&project)
        .into_iter()
        .find(|(_, kind, _)| kind == "patch.reverted")
        .unwrap();
    assert_eq!(reverted.0, 2);
    assert_eq!(reverted.2["reason"], "fewer steps pass (0 instead of 1)");
    let fixer = fixer_requests(&fake);
    assert_eq!(fixer.len(), 2);
    let second = fixer[1].message("user");
    assert!(
        second.contains("reverted: fewer steps pass") && second.contains("+if echo"),
        "{second}"
    );
    assert!(
        second.contains("FAIL: src/greet.sh:3"),
        "after the revert the original failure is the one to repair: {second}"
    );
    assert!(patch_file(&project, 1).contains("+if echo"));
    assert!(patch_file(&project, 2).contains("+echo \"Hello, world\""));
}
