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
    let no_diff = "no edit found";
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

/// The workflow file's `safety` line as `broken_project` writes it.
fn safety_line(safety: &str) -> String {
    format!("safety: {safety}")
}

/// One fenced diff, as a model would send it.
fn fenced(diff: &str) -> Reply {
    Reply::text(&format!("Here is the fix.\n\n```diff\n{diff}```\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_patches_to_the_rules_the_records_tests_and_migrations_are_denied() {
    let safety =
        r#"{max_iterations: 5, no_progress_threshold: 9, never_delete: ["migrations/**"]}"#;
    let hostile = [
        // Drop `never_delete` from the workflow, so the next run may delete a migration.
        format!(
            "--- a/w.yaml\n+++ b/w.yaml\n@@ -6 +6 @@\n-{}\n+safety: {{max_iterations: 5}}\n",
            safety_line(safety)
        ),
        // Replace this run's audit log.
        "--- /dev/null\n+++ b/artifacts/audit.jsonl\n@@ -0,0 +1 @@\n+{\"event\": \"run.succeeded\"}\n"
            .to_owned(),
        // Delete the test the gate runs, by header alone.
        "diff --git a/tests/check.sh b/tests/check.sh\ndeleted file mode 100644\nindex 1111111..0000000\n"
            .to_owned(),
        // Empty a migration with a no-break space.
        "--- a/migrations/001_init.sql\n+++ b/migrations/001_init.sql\n@@ -1 +1 @@\n-CREATE TABLE users (id int primary key);\n+\u{a0}\n"
            .to_owned(),
    ];
    let fake = OpenAiFake::start().await;
    for diff in &hostile {
        fake.push(Route::OpenAi, fenced(diff));
    }
    fake.push(Route::OpenAi, approve());
    let project = broken_project(safety);
    let workflow = project.read("w.yaml");

    run(&project, Some(&fake), &[]).await.assert_code(1);

    let rules: Vec<(String, String)> = decisions(&project)
        .into_iter()
        .filter(|(_, kind, _)| kind == "policy.decision")
        .map(|(_, _, detail)| {
            assert_eq!(detail["decision"]["verdict"], "deny", "{detail}");
            let violation = &detail["decision"]["violations"][0];
            (
                violation["rule"].as_str().unwrap().to_owned(),
                violation["file"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("workflow_files", "w.yaml"),
            ("run_records", "artifacts/audit.jsonl"),
            ("protect", "tests/check.sh"),
            ("never_delete", "migrations/001_init.sql"),
        ]
        .map(|(rule, file)| (rule.to_owned(), file.to_owned()))
    );
    assert_eq!(project.read("w.yaml"), workflow);
    assert_eq!(project.read("tests/check.sh"), CHECK);
    assert_eq!(project.read("migrations/001_init.sql"), MIGRATION);
    assert!(
        !project
            .read("artifacts/audit.jsonl")
            .contains("\"event\": \"run.succeeded\"")
    );
    assert!(!kinds(&project).iter().any(|k| k == "patch.applied"));
    assert!(reviewer_requests(&fake).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_commands_need_approval_whatever_their_shape() {
    // A commented-out DROP enabled by removing the comment's lines, a file holding a DROP
    // renamed into `migrations/`, and `rm -fr`, which only the built-in patterns know.
    let shapes = [
        (
            "--- a/db/cleanup.sql\n+++ b/db/cleanup.sql\n@@ -1,4 +1,2 @@\n SELECT 1;\n-/*\n DROP TABLE sessions;\n-*/\n",
            "db/cleanup.sql:2",
        ),
        (
            "diff --git a/attic/purge.txt b/migrations/002_purge.sql\nsimilarity index 100%\nrename from attic/purge.txt\nrename to migrations/002_purge.sql\n",
            "migrations/002_purge.sql:1",
        ),
        (
            "--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,3 +1,4 @@\n #!/bin/sh\n # Prints the greeting the service answers with.\n-echo \"Hello, wrld\"\n+rm -fr /tmp/greet-cache\n+echo \"Hello, world\"\n",
            "src/greet.sh:3",
        ),
    ];
    for (diff, place) in shapes {
        let fake = OpenAiFake::start().await;
        fake.push(Route::OpenAi, fenced(diff));
        let project =
            broken_project(r#"{max_iterations: 3, require_confirmation: ["DROP TABLE"]}"#);
        project
            .file(
                "db/cleanup.sql",
                "SELECT 1;\n/*\nDROP TABLE sessions;\n*/\n",
            )
            .file("attic/purge.txt", "DROP TABLE users;\n");

        let result = run(&project, Some(&fake), &[]).await;
        result.assert_code(1);
        assert!(
            result.stderr.contains(&format!("in `{place}`")) && result.stderr.contains("--approve"),
            "{place}: {}",
            result.stderr
        );
        let policy = decision(&project, "policy.decision");
        assert_eq!(policy["decision"]["verdict"], "needs_approval", "{policy}");
        assert!(
            kinds(&project)
                .iter()
                .any(|k| k == "stop.approval_required")
        );
        assert!(reviewer_requests(&fake).is_empty());
        assert_eq!(
            project.read("db/cleanup.sql"),
            "SELECT 1;\n/*\nDROP TABLE sessions;\n*/\n"
        );
        assert!(exists(&project, "attic/purge.txt"));
        assert_eq!(project.read("src/greet.sh"), BROKEN_GREETING);
    }
}

/// The typo fix in each edit format, as a model trained toward it would write it.
const V4A_FIX: &str = "Fixing the typo.\n\n```\n*** Begin Patch\n*** Update File: ./src/greet.sh\n@@\n # Prints the greeting the service answers with.\n-echo \"Hello, wrld\"\n+echo \"Hello, world\"\n*** End Patch\n```\n";
const SEARCH_REPLACE_FIX: &str = "The greeting has a typo.\n\nsrc/greet.sh\n```sh\n<<<<<<< SEARCH\necho \"Hello, wrld\"\n=======\necho \"Hello, world\"\n>>>>>>> REPLACE\n```\n";
const WHOLE_FILE_FIX: &str = "Here is the corrected file.\n\n**src/greet.sh**\n```sh\n#!/bin/sh\n# Prints the greeting the service answers with.\necho \"Hello, world\"\n```\n";

/// The broken project with the fixer's agent settings replaced by `fixer`.
fn project_with_fixer(fixer: &str) -> Project {
    let project = broken_project(SAFETY);
    let workflow = project.read("w.yaml").replace(
        "fixer: {model: gpt-4o, temperature: 0.2}",
        &format!("fixer: {fixer}"),
    );
    project.file("w.yaml", &workflow);
    project
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_edit_format_repairs_the_project_through_the_same_policy_and_applier() {
    let cases = [
        // (agent settings, the reply, what the system message asks for, the format read)
        (
            "{model: gpt-4o, edit_format: v4a}",
            V4A_FIX,
            "*** Begin Patch",
            "v4a",
        ),
        (
            "{model: gpt-4o, edit_format: search_replace}",
            SEARCH_REPLACE_FIX,
            "<<<<<<< SEARCH",
            "search_replace",
        ),
        (
            "{model: gpt-4o, edit_format: whole_file}",
            WHOLE_FILE_FIX,
            "the whole file in a fenced block",
            "whole_file",
        ),
        // `auto` asks Claude for SEARCH/REPLACE blocks and takes a V4A patch all the same.
        (
            "{model: claude-sonnet-4-5}",
            V4A_FIX,
            "<<<<<<< SEARCH",
            "v4a",
        ),
        // `auto` asks GPT-5 for V4A.
        ("{model: gpt-5}", V4A_FIX, "*** Begin Patch", "v4a"),
    ];
    for (fixer, reply, asked, read_as) in cases {
        let fake = OpenAiFake::start().await;
        fake.push(Route::OpenAi, Reply::text(reply))
            .push(Route::OpenAi, approve());
        let project = project_with_fixer(fixer);

        run(&project, Some(&fake), &[]).await.assert_code(0);

        assert_eq!(project.read("src/greet.sh"), FIXED_GREETING, "{fixer}");
        let system = fixer_requests(&fake)[0].message("system");
        assert!(system.contains(asked), "{fixer} was asked for:\n{system}");
        let policy = decision(&project, "policy.decision");
        assert_eq!(policy["edit_format"], read_as, "{fixer}");
        assert_eq!(policy["decision"]["verdict"], "allow");
        assert!(
            patch_file(&project, 1).contains("+echo \"Hello, world\""),
            "every format is written as the same clean diff"
        );
        let verdict = decision(&project, "review.verdict");
        assert!(
            verdict["prompt"]
                .as_str()
                .unwrap()
                .contains("+++ b/src/greet.sh"),
            "the reviewer sees the unified form of any format: {verdict}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_format_refuses_another_and_a_block_that_does_not_match_gets_the_real_lines() {
    // A SEARCH that misremembers the line, then a unified diff, then the right block.
    let stale = "src/greet.sh\n```sh\n<<<<<<< SEARCH\necho \"Hello, wrld!\"\n=======\necho \"Hello, world\"\n>>>>>>> REPLACE\n```\n";
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, Reply::text(stale))
        .push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, Reply::text(SEARCH_REPLACE_FIX))
        .push(Route::OpenAi, approve());
    let project = project_with_fixer("{model: gpt-4o, edit_format: search_replace}");

    run(&project, Some(&fake), &[]).await.assert_code(0);

    assert_eq!(project.read("src/greet.sh"), FIXED_GREETING);
    let fixer = fixer_requests(&fake);
    assert_eq!(fixer.len(), 3);
    let second = fixer[1].message("user");
    for expected in [
        "`src/greet.sh` hunk 1 (`SEARCH/REPLACE block 1`): context not found",
        "Lines 1-3 of `src/greet.sh` as they are now, where hunk 1 (`SEARCH/REPLACE block 1`) was meant to go",
        "<<<UNTRUSTED apply error",
        "1 | #!/bin/sh",
        "3 | echo \"Hello, wrld\"",
    ] {
        assert!(
            second.contains(expected),
            "missing {expected:?} in:\n{second}"
        );
    }
    let third = fixer[2].message("user");
    assert!(
        third.contains("the reply holds a unified diff, but the agent's `edit_format` asks for SEARCH/REPLACE blocks"),
        "{third}"
    );
    assert_eq!(reviewer_requests(&fake).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_refuses_the_verdict_schema_gets_asked_again_and_replays() {
    let fake = OpenAiFake::start().await;
    fake.refuse_response_format()
        .push(Route::OpenAi, Reply::text(WEAKEN_TEST))
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

    assert_eq!(recorded.read("src/greet.sh"), FIXED_GREETING);
    let reviewer = reviewer_requests(&fake);
    let with_schema: Vec<bool> = reviewer
        .iter()
        .map(|request| request.body.get("response_format").is_some())
        .collect();
    assert_eq!(
        with_schema,
        [true, false, false],
        "refused once, then asked without the schema for the rest of the run"
    );
    let verdicts: Vec<Value> = decisions(&recorded)
        .into_iter()
        .filter(|(_, kind, _)| kind == "review.verdict")
        .map(|(_, _, detail)| detail)
        .collect();
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0]["verdict"]["approved"], false);
    assert_eq!(verdicts[0]["structured"], false);
    assert_eq!(verdicts[1]["verdict"]["approved"], true);
    let tape_text = std::fs::read_to_string(tape).unwrap();
    assert_eq!(tape_text.lines().count(), 5, "{tape_text}");
    assert_eq!(
        tape_text
            .matches("\"response_format_refused\":true")
            .count(),
        1
    );
    fake.stop().await;

    let replayed = broken_project(SAFETY);
    run(&replayed, None, &["--replay", tape])
        .await
        .assert_code(0);
    assert_eq!(replayed.read("src/greet.sh"), FIXED_GREETING);
    assert_eq!(kinds(&replayed), kinds(&recorded));
}
