//! Fixes shipped as a branch and a pull request: the real binary repairs a broken checkout
//! (a real git repository), then its `on_success` step commits the patched files, pushes them
//! with real git over smart HTTP to a local bare repository, and opens or updates a pull
//! request on the Azure Repos or GitHub fake (`support::forge_fake`). Also `run.source_hash`
//! across a repair and `outputs` (`outputs.json`, pipeline output variables).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::cli::{Project, RunResult};
use crate::support::forge_fake::{
    Flavor, ForgeFake, OWNER, PROJECT, REPOSITORY_ID, REPOSITORY_NAME,
};
use crate::support::openai_fake::{OpenAiFake, Reply, Route};
use crate::support::vso;

const TOKEN: &str = "job-token-3f9d1c2b7a8e4f60";
const API_KEY: &str = "sk-ship-test-0123456789abcdef";
const BUILD_ID: &str = "4711";

pub(crate) const BROKEN: &str = "#!/bin/sh\necho \"Hello, wrld\"\n";
const FIXED: &str = "#!/bin/sh\necho \"Hello, world\"\n";
pub(crate) const CHECK: &str = "#!/bin/sh\nout=$(sh src/greet.sh)\n[ \"$out\" = \"Hello, world\" ] || { echo \"FAIL: src/greet.sh printed '$out'\"; exit 1; }\necho ok\n";
pub(crate) const GOOD_FIX: &str = "```diff\n--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo \"Hello, wrld\"\n+echo \"Hello, world\"\n```\n";
pub(crate) const APPROVE: &str = r#"{"approved": true, "reason": "fixes the typo and nothing else", "risk": "low", "suggestion": null}"#;

fn workflow(pull_request: &str) -> String {
    format!(
        r#"
name: ship-demo
agents:
  fixer: {{model: gpt-4o}}
  reviewer: {{model: gpt-4o-mini}}
safety: {{max_iterations: 3}}
steps:
  - {{id: build, gate: "echo {{{{ run.source_hash }}}} >> \"$TAGS_LOG\""}}
  - {{id: test, gate: "sh tests/check.sh"}}
repair:
  - {{id: propose, fix: {{agent: fixer}}}}
  - {{id: approve, review: {{agent: reviewer}}}}
on_success:
  - id: pr
    pull_request: {pull_request}
outputs:
  image: "registry.example/fleet-frontend:{{{{ run.source_hash }}}}"
  pull_request: "{{{{ steps.pr.outputs.url | default('') }}}}"
"#
    )
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned()
}

/// A checkout of `main` from the fake, with the bug committed, plus the user's own
/// uncommitted work: an edited README and an untracked file.
struct Checkout {
    project: Project,
    /// Outside the checkout: the fake `git` that logs its arguments, and the logs.
    tools: tempfile::TempDir,
    main: String,
}

impl Checkout {
    fn new(fake: &ForgeFake, flavor: Flavor, pull_request: &str) -> Self {
        let project = Project::new();
        let dir = project.path();
        std::fs::remove_dir(dir.join(".git")).unwrap();
        project
            .file("src/greet.sh", BROKEN)
            .file("tests/check.sh", CHECK)
            .file("README.md", "# fleet\n")
            .file(".gitignore", "artifacts/\n")
            .file("w.yaml", &workflow(pull_request));
        git(dir, &["init", "-q", "-b", "main"]);
        git(dir, &["add", "."]);
        git(dir, &["commit", "-qm", "the bug"]);
        git(dir, &["remote", "add", "origin", &fake.git_url()]);
        let header = match flavor {
            Flavor::AzureRepos => format!("AUTHORIZATION: bearer {TOKEN}"),
            Flavor::GitHub => {
                use base64::Engine as _;
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("x-access-token:{TOKEN}"));
                format!("AUTHORIZATION: basic {basic}")
            }
        };
        git(
            dir,
            &[
                "-c",
                &format!("http.extraheader={header}"),
                "push",
                "-q",
                "origin",
                "main",
            ],
        );
        let main = git(dir, &["rev-parse", "HEAD"]);
        project
            .file("README.md", "# fleet\n\nmy notes, not for the fix\n")
            .file("scratch.txt", "untracked\n");
        let tools = tempfile::tempdir().unwrap();
        let real_git = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v git"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let wrapper = tools.path().join("bin/git");
        std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$GIT_ARGV_LOG\"\nexec {} \"$@\"\n",
                real_git.trim()
            ),
        )
        .unwrap();
        make_executable(&wrapper);
        Self {
            project,
            tools,
            main,
        }
    }

    fn tags_log(&self) -> PathBuf {
        self.tools.path().join("tags.log")
    }

    /// The `run.source_hash` each iteration's build step saw, in order.
    fn tags(&self) -> Vec<String> {
        std::fs::read_to_string(self.tags_log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn git_argv(&self) -> String {
        std::fs::read_to_string(self.tools.path().join("git-argv.log")).unwrap_or_default()
    }

    fn command(&self, fake: &OpenAiFake, env: &[(&str, String)]) -> Command {
        let artifacts = self.project.artifacts();
        let mut command = self.project.command(&[
            "run",
            "w.yaml",
            "--artifacts",
            artifacts.to_str().unwrap(),
            "--quiet",
        ]);
        let path = format!(
            "{}:{}",
            self.tools.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command
            .env("PATH", path)
            .env("GIT_ARGV_LOG", self.tools.path().join("git-argv.log"))
            .env("TAGS_LOG", self.tags_log())
            .env("OPENAI_BASE_URL", fake.base_url())
            .env("OPENAI_API_KEY", API_KEY)
            .env_remove("GITHUB_TOKEN")
            .env_remove("GITHUB_REPOSITORY")
            .env_remove("SYSTEM_ACCESSTOKEN");
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    fn artifact(&self, name: &str) -> String {
        self.project.read(&format!("artifacts/{name}"))
    }

    fn audit(&self) -> Vec<Value> {
        self.artifact("audit.jsonl")
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The `pr` step's last outcome, from `audit.jsonl`.
    fn pr_outcome(&self) -> Value {
        self.audit()
            .into_iter()
            .rev()
            .find(|e| e["event"] == "step_finished" && e["step_id"] == "pr")
            .map(|e| e["outcome"].clone())
            .expect("the pr step finished")
    }

    /// Every file the run left in its artifacts, as one text.
    fn all_artifacts(&self) -> String {
        fn walk(dir: &Path, text: &mut String) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, text);
                } else {
                    text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                }
            }
        }
        let mut text = String::new();
        walk(&self.project.artifacts(), &mut text);
        text
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

async fn run(command: Command) -> RunResult {
    let mut command = command;
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    RunResult::from(output)
}

fn azure_env(fake: &ForgeFake) -> Vec<(&'static str, String)> {
    vec![
        ("TF_BUILD", "True".to_owned()),
        ("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI", fake.collection_uri()),
        ("SYSTEM_TEAMPROJECT", PROJECT.to_owned()),
        ("BUILD_REPOSITORY_ID", REPOSITORY_ID.to_owned()),
        ("BUILD_REPOSITORY_NAME", REPOSITORY_NAME.to_owned()),
        ("BUILD_BUILDID", BUILD_ID.to_owned()),
        ("BUILD_SOURCEBRANCH", "refs/heads/main".to_owned()),
        ("SYSTEM_ACCESSTOKEN", TOKEN.to_owned()),
    ]
}

pub(crate) fn script_one_repair(fake: &OpenAiFake) {
    fake.push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, Reply::text(APPROVE));
}

/// The token reached git only through its environment and the services only in headers.
#[track_caller]
fn assert_token_hidden(checkout: &Checkout, result: &RunResult) {
    let argv = checkout.git_argv();
    assert!(argv.contains("push"), "the fake git saw no push:\n{argv}");
    for (what, text) in [
        ("git's arguments", argv),
        ("the artifacts", checkout.all_artifacts()),
        ("stdout", result.stdout.clone()),
        ("stderr", result.stderr.clone()),
    ] {
        assert!(!text.contains(TOKEN), "the token is in {what}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repaired_run_pushes_only_the_patch_and_opens_one_azure_repos_pull_request() {
    let forge = ForgeFake::start(Flavor::AzureRepos, TOKEN);
    let checkout = Checkout::new(&forge, Flavor::AzureRepos, "{provider: azure_repos}");
    let openai = OpenAiFake::start().await;
    script_one_repair(&openai);

    let result = run(checkout.command(&openai, &azure_env(&forge))).await;
    result.assert_code(0);

    // The pull request: one, from the default branch into the branch being built.
    let pull_requests = forge.pull_requests();
    assert_eq!(pull_requests.len(), 1, "{pull_requests:?}");
    let pr = &pull_requests[0];
    let branch = format!("agent-orch/fix-{BUILD_ID}");
    assert_eq!(pr.source, format!("refs/heads/{branch}"));
    assert_eq!(pr.target, "refs/heads/main");
    assert_eq!(pr.title, "agent-orch: fix test: exit code 1");
    assert!(!pr.draft);
    for expected in [
        "agent-orch fixed `test: exit code 1` in workflow `ship-demo`",
        "Reviewer: approved: fixes the typo and nothing else",
        "Fleet%20Ops/_build/results?buildId=4711",
        "-echo \"Hello, wrld\"\n+echo \"Hello, world\"",
    ] {
        assert!(
            pr.description.contains(expected),
            "missing {expected:?}:\n{}",
            pr.description
        );
    }
    assert_eq!(
        forge.api_calls(),
        [
            format!("GET /contoso/Fleet%20Ops/_apis/git/repositories/{REPOSITORY_ID}/pullrequests"),
            format!(
                "POST /contoso/Fleet%20Ops/_apis/git/repositories/{REPOSITORY_ID}/pullrequests"
            ),
        ]
    );
    for request in forge.requests() {
        let expected = if request.path.starts_with("/git/") {
            format!("bearer {TOKEN}")
        } else {
            format!("Bearer {TOKEN}")
        };
        assert_eq!(
            request.authorization.as_deref(),
            Some(expected.as_str()),
            "{request:?}"
        );
    }
    let create = forge
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && !r.path.starts_with("/git/"))
        .unwrap();
    assert!(create.query.contains("api-version=7.1"), "{}", create.query);
    assert_eq!(create.body["sourceRefName"], format!("refs/heads/{branch}"));
    assert_eq!(create.body["isDraft"], false);

    // The pushed commit holds the patched file only, on top of main, and cites the audit log.
    let bare = forge.bare();
    let pushed = git(bare, &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(
        git(bare, &["rev-parse", &format!("{pushed}^")]),
        checkout.main
    );
    assert_eq!(
        git(
            bare,
            &[
                "diff-tree",
                "--no-commit-id",
                "--name-status",
                "-r",
                &pushed
            ]
        ),
        "M\tsrc/greet.sh"
    );
    assert_eq!(
        git(bare, &["show", &format!("{pushed}:src/greet.sh")]),
        FIXED.trim_end()
    );
    let message = git(bare, &["log", "-1", "--format=%B", &pushed]);
    assert!(
        message.contains("Fixes: test: exit code 1 (iteration 1"),
        "{message}"
    );
    let audit_head = message
        .lines()
        .find_map(|line| line.strip_prefix("Audit: audit.jsonl head sha256 "))
        .unwrap_or_else(|| panic!("no audit line in {message}"));
    assert!(
        checkout
            .audit()
            .iter()
            .any(|line| line["prev_sha256"] == audit_head),
        "the commit's audit hash {audit_head} is not a line of audit.jsonl"
    );

    // The checkout: still on main, the fix in place, the user's work untouched and unpushed.
    let dir = checkout.project.path();
    assert_eq!(git(dir, &["rev-parse", "HEAD"]), checkout.main);
    assert_eq!(
        git(dir, &["status", "--porcelain"]),
        " M README.md\n M src/greet.sh\n?? scratch.txt"
    );

    // run.source_hash followed the patch; the output carries the tag of the fixed tree.
    let tags = checkout.tags();
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert_ne!(tags[0], tags[1]);
    let outputs: Value = serde_json::from_str(&checkout.artifact("outputs.json")).unwrap();
    assert_eq!(
        outputs["image"],
        format!("registry.example/fleet-frontend:{}", tags[1])
    );
    let pr_url = format!(
        "{}Fleet%20Ops/_git/{REPOSITORY_NAME}/pullrequest/{}",
        forge.collection_uri(),
        pr.id
    );
    assert_eq!(outputs["pull_request"], pr_url.as_str());
    let commands = vso::parse_all(&result.stdout);
    let variables: Vec<(String, String, String)> = vso::find(&commands, "task.setvariable")
        .into_iter()
        .map(|c| {
            (
                c.property("variable").unwrap_or_default().to_owned(),
                c.property("isOutput").unwrap_or_default().to_owned(),
                c.data.clone(),
            )
        })
        .collect();
    assert_eq!(
        variables,
        [
            (
                "image".to_owned(),
                "true".to_owned(),
                format!("registry.example/fleet-frontend:{}", tags[1])
            ),
            ("pull_request".to_owned(), "true".to_owned(), pr_url.clone()),
        ]
    );
    assert!(checkout.artifact("pull-request.md").contains("### Patch 1"));
    assert_eq!(checkout.pr_outcome()["outputs"]["url"], pr_url.as_str());
    assert_token_hidden(&checkout, &result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_of_the_fix_updates_the_branch_and_the_pull_request() {
    let forge = ForgeFake::start(Flavor::AzureRepos, TOKEN);
    let checkout = Checkout::new(&forge, Flavor::AzureRepos, "{provider: azure_repos}");
    let openai = OpenAiFake::start().await;
    script_one_repair(&openai);
    script_one_repair(&openai);
    let env = azure_env(&forge);

    run(checkout.command(&openai, &env)).await.assert_code(0);
    let branch = format!("refs/heads/agent-orch/fix-{BUILD_ID}");
    let first = git(forge.bare(), &["rev-parse", &branch]);
    // The job runs again from the same broken commit.
    checkout.project.file("src/greet.sh", BROKEN);
    let result = run(checkout.command(&openai, &env)).await;
    result.assert_code(0);

    let second = git(forge.bare(), &["rev-parse", &branch]);
    assert_ne!(first, second, "the branch moved to the new commit");
    assert_eq!(
        git(forge.bare(), &["rev-parse", &format!("{second}^")]),
        checkout.main
    );
    assert_eq!(forge.pull_requests().len(), 1, "no second pull request");
    let calls = forge.api_calls();
    let repo = format!("/contoso/Fleet%20Ops/_apis/git/repositories/{REPOSITORY_ID}/pullrequests");
    assert_eq!(
        calls,
        [
            format!("GET {repo}"),
            format!("POST {repo}"),
            format!("GET {repo}"),
            format!("PATCH {repo}/101"),
        ]
    );
    assert!(
        checkout.pr_outcome()["message"]
            .as_str()
            .unwrap()
            .starts_with("updated pull request #101"),
        "{}",
        checkout.pr_outcome()
    );
    // Equal trees, equal hashes: both runs started from the same files.
    let tags = checkout.tags();
    assert_eq!(tags.len(), 4, "{tags:?}");
    assert_eq!(tags[0], tags[2]);
    assert_eq!(tags[1], tags[3]);
    assert_token_hidden(&checkout, &result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_fails_the_step_with_the_permissions_to_grant_and_keeps_the_run() {
    let forge = ForgeFake::start(Flavor::AzureRepos, TOKEN);
    let checkout = Checkout::new(&forge, Flavor::AzureRepos, "{provider: azure_repos}");
    let openai = OpenAiFake::start().await;
    script_one_repair(&openai);
    forge.deny_push(true);

    let result = run(checkout.command(&openai, &azure_env(&forge))).await;
    // Deployed and verified: the run succeeded, with an issue.
    result.assert_code(0);
    let outcome = checkout.pr_outcome();
    assert_eq!(outcome["status"], "failed");
    assert_eq!(
        outcome["message"],
        "push to origin refused (403): allow `Contribute` and `Create branch` on the repository \
         to the project's build service (Project settings → Repositories → Security)"
    );
    assert!(
        forge
            .requests()
            .iter()
            .any(|r| r.query.contains("service=git-receive-pack") && r.status == 403),
        "{:?}",
        forge.requests()
    );
    assert!(forge.pull_requests().is_empty());
    assert!(forge.api_calls().is_empty(), "{:?}", forge.api_calls());
    assert_eq!(checkout.project.read("src/greet.sh"), FIXED);
    assert!(
        checkout
            .artifact("patches/iteration-1.diff")
            .contains("Hello, world")
    );
    let commands = vso::parse_all(&result.stdout);
    let complete = vso::find(&commands, "task.complete");
    assert_eq!(complete.len(), 1, "{complete:?}");
    assert_eq!(complete[0].property("result"), Some("SucceededWithIssues"));
    assert!(
        complete[0].data.starts_with(
            "all steps passed; on_success step `pr` failed: push to origin refused (403)"
        ),
        "{}",
        complete[0].data
    );
    let warnings: Vec<&str> = vso::find(&commands, "task.logissue")
        .into_iter()
        .filter(|c| c.property("type") == Some("warning"))
        .map(|c| c.data.as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("pr failed after the run succeeded: push to origin refused (403)")),
        "{warnings:?}"
    );
    assert!(
        checkout
            .artifact("run.log")
            .contains("succeeded with issues"),
        "{}",
        checkout.artifact("run.log")
    );
    assert_token_hidden(&checkout, &result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pull_request_names_contribute_to_pull_requests() {
    let forge = ForgeFake::start(Flavor::AzureRepos, TOKEN);
    let checkout = Checkout::new(&forge, Flavor::AzureRepos, "{provider: azure_repos}");
    let openai = OpenAiFake::start().await;
    script_one_repair(&openai);
    forge.deny_pull_requests(true);

    run(checkout.command(&openai, &azure_env(&forge)))
        .await
        .assert_code(0);
    let outcome = checkout.pr_outcome();
    assert_eq!(
        outcome["message"],
        "Azure Repos refused to list the branch's pull requests (HTTP 403): allow `Contribute to \
         pull requests` on the repository to the project's build service (Project settings → \
         Repositories → Security)"
    );
    // The branch is there for whoever opens the pull request by hand.
    git(
        forge.bare(),
        &[
            "rev-parse",
            &format!("refs/heads/agent-orch/fix-{BUILD_ID}"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_pull_request_says_when_to_try_again_not_what_to_grant() {
    let forge = ForgeFake::start(Flavor::AzureRepos, TOKEN);
    let checkout = Checkout::new(&forge, Flavor::AzureRepos, "{provider: azure_repos}");
    let openai = OpenAiFake::start().await;
    script_one_repair(&openai);
    forge.rate_limit(Some(90));

    run(checkout.command(&openai, &azure_env(&forge)))
        .await
        .assert_code(0);
    assert_eq!(
        checkout.pr_outcome()["message"],
        "Azure Repos is rate limiting this token: try again to list the branch's pull requests \
         in 1m 30s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_gets_a_draft_after_the_token_is_given_pull_requests_write() {
    let forge = ForgeFake::start(Flavor::GitHub, TOKEN);
    let checkout = Checkout::new(
        &forge,
        Flavor::GitHub,
        "{provider: github, branch: \"fix/greeting\", title: \"Fix the greeting\", draft: true}",
    );
    let openai = OpenAiFake::start().await;
    script_one_repair(&openai);
    script_one_repair(&openai);
    let env = vec![
        ("GITHUB_TOKEN", TOKEN.to_owned()),
        ("GITHUB_API_URL", forge.api_url()),
        ("GITHUB_REPOSITORY", format!("{OWNER}/fleet")),
        ("GITHUB_REF_TYPE", "branch".to_owned()),
        ("GITHUB_REF_NAME", "main".to_owned()),
    ];
    forge.deny_pull_requests(true);
    run(checkout.command(&openai, &env)).await.assert_code(0);
    assert_eq!(
        checkout.pr_outcome()["message"],
        "GitHub refused to list the branch's pull requests (HTTP 403): give the token \
         `pull-requests: write` (the workflow's or job's `permissions:`)"
    );

    forge.deny_pull_requests(false);
    checkout.project.file("src/greet.sh", BROKEN);
    let result = run(checkout.command(&openai, &env)).await;
    result.assert_code(0);
    let pull_requests = forge.pull_requests();
    assert_eq!(pull_requests.len(), 1);
    assert_eq!(pull_requests[0].source, "fix/greeting");
    assert_eq!(pull_requests[0].target, "main");
    assert_eq!(pull_requests[0].title, "Fix the greeting");
    assert!(pull_requests[0].draft);
    let create = forge
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && !r.path.starts_with("/git/"))
        .unwrap();
    assert_eq!(create.body["head"], "fix/greeting");
    assert_eq!(create.body["base"], "main");
    let list = forge
        .requests()
        .into_iter()
        .rfind(|r| r.method == "GET" && !r.path.starts_with("/git/"))
        .unwrap();
    assert!(
        list.query.contains("head=contoso%3Afix%2Fgreeting"),
        "{}",
        list.query
    );
    assert_eq!(
        checkout.pr_outcome()["outputs"]["url"],
        format!("https://github.com/{OWNER}/fleet/pull/1")
    );
    assert_token_hidden(&checkout, &result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_patch_there_is_nothing_to_deliver() {
    let forge = ForgeFake::start(Flavor::AzureRepos, TOKEN);
    let checkout = Checkout::new(&forge, Flavor::AzureRepos, "{provider: git}");
    checkout.project.file("src/greet.sh", FIXED);
    let openai = OpenAiFake::start().await;
    let before = forge.requests().len();

    run(checkout.command(&openai, &[])).await.assert_code(0);
    let outcome = checkout.pr_outcome();
    assert_eq!(outcome["status"], "passed");
    assert_eq!(
        outcome["message"],
        "nothing to deliver: the run applied no patch"
    );
    assert_eq!(
        forge.requests().len(),
        before,
        "nothing was sent: {:?}",
        forge.requests()
    );
    let outputs: Value = serde_json::from_str(&checkout.artifact("outputs.json")).unwrap();
    assert_eq!(outputs["pull_request"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_description_over_azure_repos_limit_is_cut_with_a_pointer_to_the_artifact() {
    let forge = ForgeFake::start(Flavor::AzureRepos, TOKEN);
    let checkout = Checkout::new(&forge, Flavor::AzureRepos, "{provider: azure_repos}");
    let openai = OpenAiFake::start().await;
    // A fix that also documents the script at length: its diff alone passes 4,000 characters.
    let comment = "greeting ".repeat(500);
    let long_fix = format!(
        "```diff\n--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,2 +1,3 @@\n #!/bin/sh\n-echo \"Hello, wrld\"\n+# {comment}\n+echo \"Hello, world\"\n```\n"
    );
    openai
        .push(Route::OpenAi, Reply::text(&long_fix))
        .push(Route::OpenAi, Reply::text(APPROVE));

    run(checkout.command(&openai, &azure_env(&forge)))
        .await
        .assert_code(0);
    let pull_requests = forge.pull_requests();
    assert_eq!(pull_requests.len(), 1, "{:?}", checkout.pr_outcome());
    let description = &pull_requests[0].description;
    assert_eq!(description.chars().count(), 4000);
    let pointer = "… cut to the 4000-character limit of Azure Repos: the whole description is \
                   `pull-request.md` in the run's artifacts (`agent-orch-";
    assert!(description.contains(pointer), "{description}");
    assert!(description.ends_with("`)."), "{description}");
    let whole = checkout.artifact("pull-request.md");
    assert!(whole.chars().count() > 4000);
    assert!(whole.contains(comment.trim_end()));
    assert!(whole.starts_with(&description[..3000]));
}
