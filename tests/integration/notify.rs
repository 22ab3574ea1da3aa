//! `notify:` end to end: the real binary posts to local Teams, Slack and JSON webhook fakes
//! when a run ends; secrets (the webhook URLs among them) stay masked; a webhook that fails is
//! a warning that never changes the run's exit code.

use agent_orch::cluster::fake::{self, FakeCluster, FakeOptions};

use crate::keyvault::{DB_PASSWORD, files_under};
use crate::support::azure_server::{AzureConfig, AzureServer, IDENTITY_HEADER};
use crate::support::cli::{Project, RunResult};
use crate::support::http_service::{HttpService, Script};
use crate::support::kube_api::{NAMESPACE, deployment_manifest};
use crate::support::managed_identity_fake;
use crate::support::webhook_fake::WebhookFake;

fn run(project: &Project, vault: Option<&AzureServer>) -> RunResult {
    let artifacts = project.artifacts();
    let mut command = project.command(&[
        "run",
        "workflow.yaml",
        "--artifacts",
        artifacts.to_str().unwrap(),
        "--quiet",
    ]);
    if let Some(vault) = vault {
        command
            .env("AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE", vault.url())
            .env(
                "IDENTITY_ENDPOINT",
                format!("http://localhost:41{}", managed_identity_fake::PATH),
            )
            .env("IDENTITY_HEADER", IDENTITY_HEADER);
    }
    RunResult::from(command.output().unwrap())
}

/// An app answering `/json` without the secret (so a check for it fails naming the masked
/// secret), and a fake cluster to deploy to and roll back from, with its kubeconfig written.
fn app_and_cluster(project: &Project) -> (tokio::runtime::Runtime, HttpService, FakeCluster) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, cluster) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cluster = fake::serve(listener, FakeOptions::default()).await.unwrap();
        (HttpService::start(Script::default()).await, cluster)
    });
    cluster
        .write_kubeconfig(&project.path().join("kubeconfig.yaml"), NAMESPACE)
        .unwrap();
    project.file(
        "k8s/web.yaml",
        &deployment_manifest("web", "registry.local/web:1.0.0", ""),
    );
    (runtime, app, cluster)
}

#[test]
fn a_run_that_gives_up_and_rolls_back_tells_each_channel_with_secrets_masked() {
    let hooks = WebhookFake::start();
    let vault = AzureServer::start(AzureConfig::with_secrets(&[
        ("db-password", DB_PASSWORD),
        ("teams-webhook", &hooks.url("teams")),
    ]));
    let project = Project::new();
    let (_runtime, app, cluster) = app_and_cluster(&project);
    project.file(
        "workflow.yaml",
        &format!(
            r#"name: notified
environments:
  staging: {{url: "http://{}"}}
vars: {{replicas: 1}}
secrets: {{vault: fleet-kv, names: [db-password, teams-webhook]}}
safety: {{max_iterations: 1}}
notify:
  - teams: "{{{{ secrets.teams_webhook }}}}"
  - slack: "{slack}"
    on: [give_up]
  - webhook: "{hook}"
    on: [rollback]
  - webhook: "{success_only}"
    on: [success]
steps:
  - id: deploy
    deploy: {{manifests: [k8s/web.yaml], kubeconfig: kubeconfig.yaml, namespace: {NAMESPACE}}}
  - id: health
    verify: {{http: {{url: "{{{{ env.url }}}}/json", expect_body_contains: "{{{{ secrets.db_password }}}}"}}}}
on_give_up:
  - {{id: undo, rollback: {{}}}}
"#,
            app.addr,
            slack = hooks.url("slack"),
            hook = hooks.url("hook"),
            success_only = hooks.url("never"),
        ),
    );

    let result = run(&project, Some(&vault));
    result.assert_code(1);
    // The rollback was real: the deployment this run created is gone.
    assert!(cluster.deployment(NAMESPACE, "web").is_none());

    let teams = hooks.posts_to("teams");
    assert_eq!(teams.len(), 1, "one message per target");
    let card = &teams[0]["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card_text = card["content"].to_string();
    assert!(
        card_text.contains("notified on staging gave up and rolled back"),
        "{card_text}"
    );
    assert!(
        card_text.contains("health: body does not contain"),
        "{card_text}"
    );

    let slack = hooks.posts_to("slack");
    assert_eq!(slack.len(), 1);
    assert!(slack[0]["text"].as_str().unwrap().contains("gave up"));

    // The generic webhook gets the structured notice: it asked for rollbacks, and one happened.
    let hook = hooks.posts_to("hook");
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0]["outcome"], "failed");
    assert_eq!(
        hook[0]["events"],
        serde_json::json!(["give_up", "rollback"])
    );
    assert_eq!(hook[0]["failed_step"]["id"], "health");
    assert_eq!(hook[0]["rolled_back"], true);
    // A target that asked only for success hears nothing.
    assert!(hooks.posts_to("never").is_empty());
    assert_eq!(hooks.post_count(), 3);

    // The secret the check named is masked in what was posted, and the Teams URL (a secret)
    // is in no output.
    let teams_url = hooks.url("teams");
    for body in [&teams[0], &slack[0], &hook[0]] {
        let text = body.to_string();
        assert!(!text.contains(DB_PASSWORD), "{text}");
        assert!(!text.contains(&teams_url), "{text}");
    }
    assert!(
        hook[0]["failed_step"]["message"]
            .as_str()
            .unwrap()
            .contains("***")
    );
    for secret in [DB_PASSWORD, teams_url.as_str()] {
        assert!(!result.stderr.contains(secret), "{}", result.stderr);
        for (path, text) in files_under(&project.artifacts()) {
            assert!(!text.contains(secret), "{path} holds a secret");
        }
    }
}

#[test]
fn a_failing_webhook_is_a_warning_and_the_run_keeps_its_result() {
    let hooks = WebhookFake::start();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let project = Project::new();
    project.file(
        "workflow.yaml",
        &format!(
            r#"name: notified
notify:
  - {{webhook: "{fail}", on: [success]}}
  - {{slack: "{archived}", on: [success]}}
  - {{webhook: "{dead_url}", on: [success]}}
  - {{teams: "{teams}", on: [success]}}
steps:
  - {{id: build, gate: "echo built"}}
"#,
            fail = hooks.url("fail"),
            archived = hooks.url("slack-archived"),
            teams = hooks.url("teams"),
        ),
    );

    let result = run(&project, None);
    result.assert_code(0);
    let stderr = &result.stderr;
    // A rollback that had nothing to restore is no news; this run deployed nothing.
    assert!(!stderr.contains("rolled back"), "{stderr}");
    assert!(
        stderr.contains("warning: webhook notification 1 failed: 500 Internal Server Error: boom"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: slack notification 2 failed: 410 Gone: channel_is_archived"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: webhook notification 3 failed: "),
        "{stderr}"
    );
    // A webhook URL is a credential: no message names one.
    assert!(!stderr.contains(&dead_url), "{stderr}");
    assert!(!stderr.contains(&hooks.url("fail")), "{stderr}");
    // The others were still told.
    let teams = hooks.posts_to("teams");
    assert_eq!(teams.len(), 1);
    assert!(teams[0].to_string().contains("notified succeeded"));
}

#[test]
fn a_target_with_two_channels_is_refused_before_anything_runs() {
    let project = Project::new();
    project.file(
        "workflow.yaml",
        r#"name: notified
notify:
  - {teams: "http://127.0.0.1:9/a", slack: "http://127.0.0.1:9/b"}
steps:
  - {id: build, gate: "touch ran"}
"#,
    );
    let result = run(&project, None);
    result.assert_code(2);
    assert!(
        result.stderr.contains(
            "a notification target needs exactly one of `teams`, `slack` or `webhook`, found 2"
        ),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("workflow.yaml:3:5"),
        "{}",
        result.stderr
    );
    assert!(!project.path().join("ran").exists());
}
