//! `agent-orch worker` against a real hub: it claims tasks, runs their workflows with the
//! engine, streams progress, records evidence, and gives failed tasks back.

use std::time::Duration;

use agent_orch::core::agent_env::AgentEnv;
use agent_orch::core::secret::Secret;
use agent_orch::hub::api::ApiTokens;
use agent_orch::hub::model::{AssignmentStatus, EvidenceKind, TaskStatus};
use agent_orch::hub::plan::Plan;
use agent_orch::hub::store::{NewTask, TaskFilter};
use agent_orch::worker::{TokenVault, WorkerOptions, WorkerSummary, run_worker};
use axum::http::Method;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::keyvault::{DB_PASSWORD, files_under};
use crate::support::azure_server::{AzureConfig, AzureServer, CLIENT_ID, OIDC_TOKEN, TENANT_ID};
use crate::support::cutting_proxy::CuttingProxy;
use crate::support::forge_fake::{FakeState, Flavor, ForgeFake, OWNER};
use crate::support::hub_db::{HubDb, on_both_stores};
use crate::support::hub_server::{TOKEN, TestHub};
use crate::support::openai_fake::OpenAiFake;
use crate::support::tools;

fn task(key: &str, priority: i64, workflow: Option<&str>) -> NewTask {
    NewTask {
        estimate_hours: 2.0,
        priority,
        workflow: workflow.map(str::to_owned),
        ..NewTask::new(key, "worker")
    }
}

/// A worker of the test hub working in `workdir`: quick heartbeats and polls, gone when idle.
fn worker(hub: &TestHub, id: &str, workdir: &std::path::Path) -> WorkerOptions {
    WorkerOptions {
        hub: hub.base.clone(),
        token: Secret::new(TOKEN),
        id: id.into(),
        host: String::new(),
        capabilities: Vec::new(),
        workdir: workdir.to_owned(),
        heartbeat_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
        max_tasks: None,
        exit_when_idle: true,
        environment: AgentEnv::default(),
        managed_identity: false,
        token_vault: None,
    }
}

fn git(repo: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(tools::tool("git"))
        .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Runs the worker until it has nothing left to do (at most 60 s).
async fn work_until_idle(options: &WorkerOptions) -> WorkerSummary {
    tokio::time::timeout(
        Duration::from_secs(60),
        run_worker(options, CancellationToken::new()),
    )
    .await
    .expect("the worker finishes")
    .unwrap()
}

/// A git repository with `workflows/<name>.yaml` for each of `workflows`, committed.
fn committed_workflows(workflows: &[(&str, &str)]) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("workflows")).unwrap();
    for (name, yaml) in workflows {
        std::fs::write(repo.path().join(format!("workflows/{name}.yaml")), yaml).unwrap();
    }
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "workflows"]);
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_task_workflows_and_reports_outcomes_and_evidence() {
    let repo = committed_workflows(&[
        (
            "ok",
            "name: ok\nsafety: {max_iterations: 1}\nsteps:\n  - {id: build, gate: \"echo built\"}\n  - {id: test, gate: \"echo tested\"}\n",
        ),
        (
            "fail",
            "name: fail\nsafety: {max_iterations: 1}\nsteps:\n  - {id: test, gate: \"echo broken >&2; exit 3\"}\n",
        ),
    ]);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);

    let hub = TestHub::start(HubDb::sqlite()).await;
    let store = hub.hub.state.store.clone();
    store
        .import_plan(
            "worker",
            None,
            &[
                task("ok", 3, Some("workflows/ok.yaml")),
                task("fail", 2, Some("workflows/fail.yaml")),
                task("none", 1, None),
                task("escape", 0, Some("../outside.yaml")),
            ],
        )
        .await
        .unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", hub.hub.addr))
        .await
        .unwrap();

    let options = WorkerOptions {
        host: "test".into(),
        capabilities: vec!["ci".into()],
        max_tasks: Some(4),
        ..worker(&hub, "worker-1", repo.path())
    };
    let summary = work_until_idle(&options).await;
    assert_eq!(
        summary,
        WorkerSummary {
            completed: 1,
            failed: 3,
            lost: 0,
            cancelled: 0
        }
    );

    let tasks = store.tasks(&TaskFilter::default()).await.unwrap();
    let by_key = |key: &str| tasks.iter().find(|t| t.key == key).unwrap().clone();
    assert_eq!(by_key("ok").status, TaskStatus::Done);
    for key in ["fail", "none", "escape"] {
        assert_eq!(
            by_key(key).status,
            TaskStatus::Pending,
            "{key} is given back"
        );
    }
    let assignments = store.assignments(Some("worker-1"), None).await.unwrap();
    let note_of = |key: &str| {
        let id = by_key(key).id;
        let assignment = assignments.iter().find(|a| a.task_id == id).unwrap();
        (assignment.status, assignment.note.clone())
    };
    let (status, note) = note_of("ok");
    assert_eq!(status, AssignmentStatus::Completed);
    assert!(note.contains("succeeded in 1 iteration"), "{note}");
    let (status, note) = note_of("fail");
    assert_eq!(status, AssignmentStatus::Failed);
    assert!(note.contains("did not succeed"), "{note}");
    assert!(note_of("none").1.contains("no workflow"));
    assert!(
        note_of("escape")
            .1
            .contains("not a path inside the repository")
    );

    let evidence = store.evidence_for(by_key("ok").id).await.unwrap();
    let junit = evidence
        .iter()
        .find(|e| e.kind == EvidenceKind::Junit)
        .expect("junit evidence");
    let junit_xml = std::fs::read_to_string(&junit.reference).unwrap();
    assert!(
        junit_xml.contains("build") && junit_xml.contains("test"),
        "{junit_xml}"
    );
    let commit = evidence
        .iter()
        .find(|e| e.kind == EvidenceKind::Commit)
        .expect("commit evidence");
    assert_eq!(commit.reference, head);
    assert_eq!(commit.agent_id.as_deref(), Some("worker-1"));

    // Progress streamed while the workflow ran, before the completion.
    let ok_id = by_key("ok").id;
    let ok_assignment = assignments.iter().find(|a| a.task_id == ok_id).unwrap().id;
    let mut progress = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_millis(500), socket.next()).await
    {
        let Ok(text) = message.to_text() else {
            continue;
        };
        let event: serde_json::Value = serde_json::from_str(text).unwrap();
        if event["type"] == "assignment.updated" && event["data"]["id"] == ok_assignment {
            progress.push(event["data"]["progress"].as_i64().unwrap());
        }
    }
    assert!(progress.len() >= 3, "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert_eq!(progress.first(), Some(&10));
    assert_eq!(progress.last(), Some(&100));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_whose_answer_was_cut_off_is_sent_again_and_kept_once() {
    let repo = committed_workflows(&[(
        "ok",
        "name: ok\nsafety: {max_iterations: 1}\nsteps:\n  - {id: build, gate: \"echo built\"}\n",
    )]);

    let hub = TestHub::start(HubDb::sqlite()).await;
    let store = hub.hub.state.store.clone();
    store
        .import_plan("worker", None, &[task("ok", 0, Some("workflows/ok.yaml"))])
        .await
        .unwrap();
    // The hub records the first report, then its answer breaks off.
    let proxy = CuttingProxy::start(&hub.base, Method::POST, "/api/git/evidence").await;

    let options = WorkerOptions {
        hub: proxy.base.clone(),
        max_tasks: Some(1),
        ..worker(&hub, "worker-1", repo.path())
    };
    let summary = work_until_idle(&options).await;
    assert_eq!(summary.completed, 1, "{summary:?}");
    assert_eq!(proxy.cuts(), 1);

    let task = store.tasks(&TaskFilter::default()).await.unwrap().remove(0);
    let mut kinds: Vec<_> = store
        .evidence_for(task.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    kinds.sort_by_key(|kind| kind.as_str());
    assert_eq!(kinds, [EvidenceKind::Commit, EvidenceKind::Junit]);
    hub.stop().await;
}

#[tokio::test]
async fn a_worker_with_a_wrong_token_fails_fast() {
    let hub = TestHub::start(HubDb::sqlite()).await;
    let options = WorkerOptions {
        token: Secret::new("wrong-token-0123456789"),
        ..worker(&hub, "worker-2", &std::env::temp_dir())
    };
    let err = run_worker(&options, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    hub.stop().await;
}

const SECRET_WORKFLOW: &str = r#"name: with-secrets
safety: {max_iterations: 1}
secrets: {vault: fleet-kv, names: [db-password]}
steps:
  - id: check
    gate:
      run: 'test "$PW" = "$(cat expected.txt)" && echo "pw=$PW"'
      env: {PW: "{{ secrets.db_password }}"}
"#;

/// A repository whose task workflows read a Key Vault secret; `expected.txt` holds its value.
fn secret_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("workflows")).unwrap();
    std::fs::write(repo.path().join("workflows/ok.yaml"), SECRET_WORKFLOW).unwrap();
    std::fs::write(
        repo.path().join("workflows/fail.yaml"),
        SECRET_WORKFLOW.replace("&& echo \"pw=$PW\"", "&& echo \"pw=$PW\" >&2 && exit 3"),
    )
    .unwrap();
    std::fs::write(repo.path().join("expected.txt"), DB_PASSWORD).unwrap();
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "workflows"]);
    repo
}

/// A worker in an AKS pod with workload identity (its token file in `pod`), all Azure calls
/// going to `azure`.
fn worker_in_aks(
    hub: &TestHub,
    repo: &std::path::Path,
    azure: &AzureServer,
    pod: &std::path::Path,
) -> WorkerOptions {
    let token_file = pod.join("azure-identity-token");
    std::fs::write(&token_file, OIDC_TOKEN).unwrap();
    WorkerOptions {
        environment: AgentEnv::from_vars([
            ("AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE", azure.url()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
            ("AZURE_TENANT_ID", TENANT_ID.to_owned()),
        ]),
        ..worker(hub, "worker-kv", repo)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_workflows_get_their_secrets_and_the_hub_never_sees_them() {
    let repo = secret_repo();
    let azure = AzureServer::start(AzureConfig::with_secrets(&[("db-password", DB_PASSWORD)]));
    let hub = TestHub::start(HubDb::sqlite()).await;
    let store = hub.hub.state.store.clone();
    store
        .import_plan(
            "kv",
            None,
            &[
                task("ok", 1, Some("workflows/ok.yaml")),
                task("fail", 0, Some("workflows/fail.yaml")),
            ],
        )
        .await
        .unwrap();
    let pod = tempfile::tempdir().unwrap();
    let options = WorkerOptions {
        max_tasks: Some(2),
        ..worker_in_aks(&hub, repo.path(), &azure, pod.path())
    };
    let summary = work_until_idle(&options).await;
    // `ok` passes only if the secret arrived intact.
    assert_eq!((summary.completed, summary.failed), (1, 1), "{summary:?}");

    let mut told_the_hub = Vec::new();
    for task in store.tasks(&TaskFilter::default()).await.unwrap() {
        told_the_hub.push(serde_json::to_string(&task).unwrap());
        for evidence in store.evidence_for(task.id).await.unwrap() {
            told_the_hub.push(serde_json::to_string(&evidence).unwrap());
        }
    }
    for assignment in store.assignments(None, None).await.unwrap() {
        told_the_hub.push(serde_json::to_string(&assignment).unwrap());
    }
    assert!(told_the_hub.len() > 4, "{told_the_hub:?}");
    for text in &told_the_hub {
        assert!(
            !text.contains(DB_PASSWORD),
            "a secret reached the hub: {text}"
        );
    }
    // The runs' own reports (junit, logs, audit) mask it too, though both steps printed it.
    let reports = files_under(&repo.path().join(".agent-orch"));
    assert!(
        reports
            .iter()
            .filter(|(_, text)| text.contains("pw="))
            .count()
            >= 2,
        "{reports:?}"
    );
    for (path, text) in &reports {
        assert!(
            !text.contains(DB_PASSWORD),
            "{path} holds the secret: {text}"
        );
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_secrets_cannot_be_read_is_given_back_without_running() {
    let repo = secret_repo();
    let mut config = AzureConfig::with_secrets(&[("db-password", DB_PASSWORD)]);
    config.deny = true;
    let azure = AzureServer::start(config);
    let hub = TestHub::start(HubDb::sqlite()).await;
    let store = hub.hub.state.store.clone();
    store
        .import_plan("kv", None, &[task("ok", 0, Some("workflows/ok.yaml"))])
        .await
        .unwrap();
    let pod = tempfile::tempdir().unwrap();
    let options = WorkerOptions {
        max_tasks: Some(1),
        ..worker_in_aks(&hub, repo.path(), &azure, pod.path())
    };
    let summary = work_until_idle(&options).await;
    assert_eq!(summary.failed, 1, "{summary:?}");
    let assignment = &store.assignments(None, None).await.unwrap()[0];
    assert_eq!(assignment.status, AssignmentStatus::Failed);
    assert!(
        assignment
            .note
            .starts_with("failed to fetch the workflow's secrets, so nothing ran: key vault")
            && assignment
                .note
                .contains("access to secret `db-password` was denied"),
        "{}",
        assignment.note
    );
    assert!(
        !repo.path().join(".agent-orch").exists(),
        "nothing ran, so no run left artifacts"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_the_assignment_whose_answer_it_never_got() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("workflows")).unwrap();
    std::fs::write(
        repo.path().join("workflows/ok.yaml"),
        "name: ok\nsafety: {max_iterations: 1}\nsteps:\n  - {id: build, gate: \"echo built\"}\n",
    )
    .unwrap();
    git(repo.path(), &["init", "-q"]);
    let hub = TestHub::start(HubDb::sqlite()).await;
    let store = hub.hub.state.store.clone();
    store
        .import_plan(
            "adopt",
            None,
            &[
                task("claimed", 1, Some("workflows/ok.yaml")),
                task("next", 0, Some("workflows/ok.yaml")),
            ],
        )
        .await
        .unwrap();
    // The hub handed `claimed` to worker-1, but the answer never arrived (the hub died, the
    // worker restarted): the assignment is active and worker-1 knows nothing of it.
    store.heartbeat("worker-1", "", &[]).await.unwrap();
    let orphan = store.claim("worker-1").await.unwrap().unwrap();
    assert_eq!(orphan.task.key, "claimed");

    let options = worker(&hub, "worker-1", repo.path());
    let summary = work_until_idle(&options).await;
    assert_eq!((summary.completed, summary.failed), (2, 0), "{summary:?}");
    let assignments = store.assignments(None, None).await.unwrap();
    assert_eq!(
        assignments.len(),
        2,
        "no second claim of `claimed`: {assignments:?}"
    );
    let adopted = assignments
        .iter()
        .find(|a| a.task_id == orphan.task.id)
        .unwrap();
    assert_eq!(
        (adopted.id, adopted.status),
        (orphan.assignment.id, AssignmentStatus::Completed)
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_read_again_from_key_vault() {
    const ROTATED: &str = "rotated-hub-token-0123456789";
    let repo = committed_workflows(&[(
        "ok",
        "name: ok\nsafety: {max_iterations: 1}\nsteps:\n  - {id: build, gate: \"echo built\"}\n",
    )]);
    let hub = TestHub::start(HubDb::sqlite()).await;
    hub.hub
        .state
        .store
        .import_plan("worker", None, &[task("ok", 0, Some("workflows/ok.yaml"))])
        .await
        .unwrap();
    // The token was rotated after this worker read it: the hub and the vault hold the new one.
    hub.hub
        .state
        .tokens
        .replace_with(&ApiTokens::new([ROTATED]).unwrap());
    let azure = AzureServer::start(AzureConfig::with_secrets(&[(
        "agent-orch-hub-token",
        ROTATED,
    )]));
    let pod = tempfile::tempdir().unwrap();
    let options = WorkerOptions {
        token_vault: Some(TokenVault {
            vault: "fleet-kv".into(),
            secret: "agent-orch-hub-token".into(),
        }),
        max_tasks: Some(1),
        ..worker_in_aks(&hub, repo.path(), &azure, pod.path())
    };
    assert_eq!(options.token.expose(), TOKEN);
    let summary = work_until_idle(&options).await;
    assert_eq!(summary.completed, 1, "{summary:?}");
    // Read once: the renewed token served the heartbeats and the work after it.
    let reads = azure.requests_to("/secrets/agent-orch-hub-token");
    assert_eq!(
        reads.iter().filter(|r| r.status == 200).count(),
        1,
        "{reads:?}"
    );

    // A vault that still holds a refused token: the refusal stands.
    hub.hub
        .state
        .tokens
        .replace_with(&ApiTokens::new(["third-hub-token-0123456789"]).unwrap());
    let err = run_worker(&options, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    hub.stop().await;
}

on_both_stores! {
    a_worker_runs_a_two_environment_workflow_from_a_plan_as_run_would => two_environments_from_a_plan;
}

/// One workflow, two environments: each task names its environment and variables, and the
/// gate proves the run saw them and the Key Vault secret.
const TWO_ENVIRONMENTS: &str = r#"name: two-environments
environments:
  staging: {namespace: app-staging}
  prod: {namespace: app-prod}
vars: {tag: ""}
safety: {max_iterations: 1}
secrets: {vault: fleet-kv, names: [db-password]}
steps:
  - id: deploy
    gate:
      run: 'test "$PW" = "$(cat expected.txt)" && echo "{{ env.namespace }} {{ vars.tag }}" >> deployed.txt'
      env: {PW: "{{ secrets.db_password }}"}
"#;

const TWO_ENVIRONMENT_PLAN: &str = r#"project: {name: fleet}
epics:
  - name: deploy
    tasks:
      - {key: D-1, title: staging, hours: 1, priority: 2, workflow: workflows/deploy.yaml,
         environment: staging, vars: {tag: v1}}
      - {key: D-2, title: prod, hours: 1, priority: 1, workflow: workflows/deploy.yaml,
         environment: prod, vars: {tag: v2}, depends_on: [D-1]}
      - {key: D-3, title: nowhere, hours: 1, workflow: workflows/deploy.yaml}
"#;

async fn two_environments_from_a_plan(db: HubDb) {
    let repo = committed_workflows(&[("deploy", TWO_ENVIRONMENTS)]);
    std::fs::write(repo.path().join("expected.txt"), DB_PASSWORD).unwrap();
    let plan_file = repo.path().join("plan.yaml");
    std::fs::write(&plan_file, TWO_ENVIRONMENT_PLAN).unwrap();
    let plan = Plan::load(&plan_file).unwrap();
    let azure = AzureServer::start(AzureConfig::with_secrets(&[("db-password", DB_PASSWORD)]));
    let hub = TestHub::start(db).await;
    let store = hub.hub.state.store.clone();
    store
        .import_plan(&plan.project.name, None, &plan.tasks())
        .await
        .unwrap();
    // The API hands workers the environment and variables with the task.
    let (status, tasks) = hub.get("/api/tasks").await;
    assert_eq!(status, 200);
    let prod = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["key"] == "D-2")
        .unwrap();
    assert_eq!(prod["environment"], "prod");
    assert_eq!(prod["vars"], serde_json::json!({"tag": "v2"}));

    let pod = tempfile::tempdir().unwrap();
    // D-3 would come back after failing; three tasks are one attempt each.
    let options = WorkerOptions {
        max_tasks: Some(3),
        ..worker_in_aks(&hub, repo.path(), &azure, pod.path())
    };
    let summary = work_until_idle(&options).await;
    assert_eq!((summary.completed, summary.failed), (2, 1), "{summary:?}");
    let deployed = std::fs::read_to_string(repo.path().join("deployed.txt")).unwrap();
    assert_eq!(deployed, "app-staging v1\napp-prod v2\n");
    // A task of a workflow with environments that names none fails as `run` would, saying why.
    let nowhere = store
        .tasks(&TaskFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|task| task.key == "D-3")
        .unwrap();
    let assignments = store.assignments(None, None).await.unwrap();
    let note = &assignments
        .iter()
        .find(|assignment| assignment.task_id == nowhere.id)
        .unwrap()
        .note;
    assert!(note.contains("no environment selected"), "{note}");
    hub.stop().await;
}

on_both_stores! {
    a_cancelled_assignment_stops_its_run_as_ctrl_c_would_and_ends_cancelled => cancel_a_running_task;
    a_cancel_and_a_completion_race_and_exactly_one_wins => cancel_against_completion;
    a_task_whose_run_opens_a_pull_request_waits_in_review_until_it_merges => pull_request_review;
}

/// A step that runs until it is stopped, and the clean-up that an interrupt runs.
const LONG_WORKFLOW: &str = r#"name: long
safety: {max_iterations: 1}
steps:
  - {id: build, gate: "touch build-started; sleep 60"}
on_give_up:
  - {id: cleanup, gate: "touch cleanup-ran"}
"#;

async fn cancel_a_running_task(db: HubDb) {
    let repo = committed_workflows(&[("long", LONG_WORKFLOW)]);
    let hub = TestHub::start(db).await;
    let store = hub.hub.state.store.clone();
    store
        .import_plan(
            "cancel",
            None,
            &[task("long", 0, Some("workflows/long.yaml"))],
        )
        .await
        .unwrap();
    let options = WorkerOptions {
        max_tasks: Some(1),
        ..worker(&hub, "worker-cancel", repo.path())
    };
    let started = repo.path().join("build-started");
    let cancel_while_running = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !started.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the step never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let assignment = store.assignments(None, None).await.unwrap()[0].clone();
        let cancel = format!("/api/assignments/{}/cancel", assignment.id);
        let (status, answer) = hub.send(Method::POST, &cancel, serde_json::json!({})).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["cancel_requested"], true);
        (assignment, cancel, std::time::Instant::now())
    };
    // The worker is not `Send` (the engine holds its reporters), so both run in this task.
    let (summary, (assignment, cancel, cancelled_at)) =
        tokio::join!(Box::pin(work_until_idle(&options)), cancel_while_running);
    // Heard at the next heartbeat (200 ms), long before the step's 60 s.
    assert!(cancelled_at.elapsed() < Duration::from_secs(20));
    assert_eq!(summary.cancelled, 1, "{summary:?}");
    assert!(repo.path().join("cleanup-ran").exists(), "on_give_up runs");
    let ended = store.assignment(assignment.id).await.unwrap();
    assert_eq!(ended.status, AssignmentStatus::Cancelled, "{ended:?}");
    assert!(
        ended.note.starts_with("cancelled by an operator"),
        "{ended:?}"
    );
    let task = store.task(assignment.task_id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Blocked);
    assert_eq!(task.assigned_agent, None);
    // The run's reports were written as after Ctrl-C.
    let runs = repo.path().join(".agent-orch/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["outcome"], "interrupted");
    // Cancelling again is answered the same; the assignment has ended `cancelled`.
    let (status, again) = hub.send(Method::POST, &cancel, serde_json::json!({})).await;
    assert_eq!(
        (status, &again["status"]),
        (202, &serde_json::json!("cancelled"))
    );
    let (status, missing) = hub
        .send(
            Method::POST,
            "/api/assignments/999999/cancel",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 404, "{missing}");
    hub.stop().await;
}

/// A cancel and a completion sent together: exactly one wins, and the other is a 409 that
/// says what happened.
async fn cancel_against_completion(db: HubDb) {
    const ROUNDS: usize = 12;
    let hub = TestHub::start(db).await;
    let store = hub.hub.state.store.clone();
    let tasks: Vec<NewTask> = (0..ROUNDS)
        .map(|n| NewTask::new(format!("R-{n}"), "race"))
        .collect();
    store.import_plan("race", None, &tasks).await.unwrap();
    store.heartbeat("racer", "h", &[]).await.unwrap();
    let (mut cancels, mut completions) = (0, 0);
    for _ in 0..ROUNDS {
        let claim = store.claim("racer").await.unwrap().unwrap();
        let id = claim.assignment.id;
        let cancel_path = format!("/api/assignments/{id}/cancel");
        let cancel = hub.send(Method::POST, &cancel_path, serde_json::json!({}));
        let progress = format!("/api/assignments/{id}/progress");
        let complete = hub.send(
            Method::PATCH,
            &progress,
            serde_json::json!({"progress": 100, "status": "completed"}),
        );
        let ((cancel_status, cancel_answer), (complete_status, complete_answer)) =
            tokio::join!(cancel, complete);
        match (cancel_status, complete_status) {
            (202, 409) => {
                cancels += 1;
                let error = complete_answer["error"].as_str().unwrap();
                assert!(error.contains("was cancelled by an operator"), "{error}");
                // The worker then says it stopped; the task waits for an operator.
                let (status, ended) = hub
                    .send(
                        Method::PATCH,
                        &progress,
                        serde_json::json!({"progress": 0, "status": "cancelled"}),
                    )
                    .await;
                assert_eq!(
                    (status, &ended["status"]),
                    (200, &serde_json::json!("cancelled"))
                );
                let task = store.task(claim.task.id).await.unwrap();
                assert_eq!(task.status, TaskStatus::Blocked);
            }
            (409, 200) => {
                completions += 1;
                let error = cancel_answer["error"].as_str().unwrap();
                assert!(error.contains("already ended `completed`"), "{error}");
                let task = store.task(claim.task.id).await.unwrap();
                assert_eq!(task.status, TaskStatus::Done);
                // Nothing but the completion is accepted now.
                let (status, _) = hub
                    .send(
                        Method::PATCH,
                        &progress,
                        serde_json::json!({"progress": 0, "status": "cancelled"}),
                    )
                    .await;
                assert_eq!(status, 409);
            }
            other => panic!("{other:?}: {cancel_answer} / {complete_answer}"),
        }
    }
    assert_eq!(cancels + completions, ROUNDS);
    hub.stop().await;
}

const FORGE_TOKEN: &str = "forge-token-7c1e9b3a5d";

/// A broken checkout whose workflow repairs it and ships the fix as a GitHub pull request.
fn ship_workflow(openai: &OpenAiFake) -> String {
    let agent = |model: &str| {
        format!(
            "{{model: {model}, base_url: \"{}\", api_key: \"sk-worker-test-0123456789\"}}",
            openai.base_url()
        )
    };
    format!(
        "name: ship\nagents:\n  fixer: {}\n  reviewer: {}\nsafety: {{max_iterations: 3}}\n\
         steps:\n  - {{id: test, gate: \"sh tests/check.sh\"}}\n\
         repair:\n  - {{id: propose, fix: {{agent: fixer}}}}\n  - {{id: approve, review: {{agent: reviewer}}}}\n\
         on_success:\n  - id: pr\n    pull_request: {{provider: github, target: main}}\n",
        agent("gpt-4o"),
        agent("gpt-4o-mini")
    )
}

async fn pull_request_review(db: HubDb) {
    use crate::pull_request::{BROKEN, CHECK, script_one_repair};
    let forge = ForgeFake::start(Flavor::GitHub, FORGE_TOKEN);
    let openai = OpenAiFake::start().await;
    script_one_repair(&openai);
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    for (path, text) in [
        ("src/greet.sh", BROKEN.to_owned()),
        ("tests/check.sh", CHECK.to_owned()),
        (".gitignore", ".agent-orch/\n".to_owned()),
        ("workflows/ship.yaml", ship_workflow(&openai)),
    ] {
        std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
        std::fs::write(dir.join(path), text).unwrap();
    }
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "the bug"]);
    git(dir, &["remote", "add", "origin", &forge.git_url()]);
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{FORGE_TOKEN}"))
    };
    let header = format!("http.extraheader=AUTHORIZATION: basic {basic}");
    git(dir, &["-c", &header, "push", "-q", "origin", "main"]);

    let hub = TestHub::start_polling(
        db,
        agent_orch::hub::pull_requests::PullRequestPolling {
            token: Secret::new(FORGE_TOKEN),
            github_api: forge.api_url(),
            interval: Duration::from_millis(100),
        },
    )
    .await;
    let store = hub.hub.state.store.clone();
    store
        .import_plan(
            "ship",
            None,
            &[
                task("fix", 2, Some("workflows/ship.yaml")),
                NewTask {
                    depends_on: vec!["fix".into()],
                    ..task("after", 1, None)
                },
            ],
        )
        .await
        .unwrap();
    // The real binary: the pull_request step reads the job's variables from its process.
    let worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-orch"))
        .args(["worker", "--hub", &hub.base, "--id", "worker-pr"])
        .args(["--workdir", dir.to_str().unwrap()])
        .args(["--exit-when-idle", "--poll-interval", "50ms"])
        .env("AGENT_ORCH_HUB_TOKEN", TOKEN)
        .env("GITHUB_TOKEN", FORGE_TOKEN)
        .env("GITHUB_API_URL", forge.api_url())
        .env("GITHUB_REPOSITORY", format!("{OWNER}/fleet"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("the worker finishes")
        .unwrap();
    assert!(output.status.success(), "{output:?}");

    // The pull request the run opened: evidence, the task's branch and URL, and review.
    let pulls = forge.pull_requests();
    assert_eq!(pulls.len(), 1, "{pulls:?}: {output:?}");
    let url = format!("https://github.com/{OWNER}/fleet/pull/{}", pulls[0].id);
    let fix = store
        .tasks(&TaskFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|task| task.key == "fix")
        .unwrap();
    assert_eq!(fix.status, TaskStatus::Review);
    assert_eq!(fix.pr_url.as_deref(), Some(url.as_str()));
    assert_eq!(fix.branch.as_deref(), Some(pulls[0].source.as_str()));
    let evidence = store.evidence_for(fix.id).await.unwrap();
    let pr = evidence
        .iter()
        .find(|e| e.kind == EvidenceKind::Pr)
        .expect("pr evidence");
    assert_eq!(pr.reference, url);
    let (_, queue) = hub.get("/api/git/merge-queue").await;
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    assert_eq!(queue[0]["key"], "fix");
    assert_eq!(queue[0]["pr_url"], url.as_str());

    // Merged on the forge: the hub's poll makes the task done and its dependent ready.
    forge.set_state(pulls[0].id, FakeState::Merged);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let task = store.task(fix.id).await.unwrap();
        if task.status == TaskStatus::Done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {:?}",
            task.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, ready) = hub.get("/api/tasks/ready/list").await;
    assert_eq!(ready[0]["key"], "after", "{ready}");
    hub.stop().await;
}
