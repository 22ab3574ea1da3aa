//! `agent-orch worker` against a real hub: it claims tasks, runs their workflows with the
//! engine, streams progress, records evidence, and gives failed tasks back.

use std::time::Duration;

use agent_orch::hub::model::{AssignmentStatus, EvidenceKind, TaskStatus};
use agent_orch::hub::store::{NewTask, TaskFilter};
use agent_orch::hub::worker::{WorkerOptions, WorkerSummary, run_worker};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::support::hub_db::HubDb;
use crate::support::hub_server::{TOKEN, TestHub};

fn task(key: &str, priority: i64, workflow: Option<&str>) -> NewTask {
    NewTask {
        key: key.into(),
        epic: "worker".into(),
        title: key.into(),
        description: String::new(),
        estimate_hours: 2.0,
        priority,
        status: TaskStatus::Pending,
        workflow: workflow.map(str::to_owned),
        depends_on: Vec::new(),
    }
}

fn git(repo: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_task_workflows_and_reports_outcomes_and_evidence() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("workflows")).unwrap();
    std::fs::write(
        repo.path().join("workflows/ok.yaml"),
        "name: ok\nsafety: {max_iterations: 1}\nsteps:\n  - {id: build, gate: \"echo built\"}\n  - {id: test, gate: \"echo tested\"}\n",
    )
    .unwrap();
    std::fs::write(
        repo.path().join("workflows/fail.yaml"),
        "name: fail\nsafety: {max_iterations: 1}\nsteps:\n  - {id: test, gate: \"echo broken >&2; exit 3\"}\n",
    )
    .unwrap();
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "workflows"]);
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
        hub: hub.base.clone(),
        token: TOKEN.into(),
        id: "worker-1".into(),
        host: "test".into(),
        capabilities: vec!["ci".into()],
        workdir: repo.path().to_owned(),
        heartbeat_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
        max_tasks: Some(4),
        exit_when_idle: true,
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        run_worker(&options, CancellationToken::new()),
    )
    .await
    .expect("the worker finishes")
    .unwrap();
    assert_eq!(
        summary,
        WorkerSummary {
            completed: 1,
            failed: 3,
            lost: 0
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

#[tokio::test]
async fn a_worker_with_a_wrong_token_fails_fast() {
    let hub = TestHub::start(HubDb::sqlite()).await;
    let options = WorkerOptions {
        hub: hub.base.clone(),
        token: "wrong-token-0123456789".into(),
        id: "worker-2".into(),
        host: String::new(),
        capabilities: Vec::new(),
        workdir: std::env::temp_dir(),
        heartbeat_interval: Duration::from_secs(1),
        poll_interval: Duration::from_secs(1),
        max_tasks: None,
        exit_when_idle: true,
    };
    let err = run_worker(&options, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    hub.stop().await;
}
