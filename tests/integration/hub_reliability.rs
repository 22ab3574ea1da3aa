//! kill -9 the hub in the middle of a load of concurrent claims, restart it on the same
//! database, finish the load: no task is lost and none is assigned twice. On both stores.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_orch::hub::model::{AssignmentStatus, TaskStatus};
use agent_orch::hub::store::{NewTask, Store, TaskFilter};
use serde_json::json;
use tokio::sync::RwLock;

use crate::support::hub_db::{HubDb, on_both_stores};
use crate::support::hub_process::HubProcess;
use crate::support::hub_server::TOKEN;

const TASKS: usize = 400;
const WORKERS: usize = 16;
/// The hub is killed once this many claims have been answered.
const KILL_AFTER: usize = 120;

on_both_stores! {
    killing_the_hub_mid_load_loses_no_task_and_assigns_none_twice => kill_nine_during_claims;
    a_fleet_of_workers_rides_out_a_hub_killed_and_restarted => fleet_survives_kill_nine;
}

async fn kill_nine_during_claims(db: HubDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let tasks: Vec<NewTask> = (0..TASKS)
        .map(|n| NewTask::new(format!("K-{n}"), "reliability"))
        .collect();
    store
        .import_plan("reliability", None, &tasks)
        .await
        .unwrap();
    store.close().await;

    let hub = HubProcess::start(&db.url).await;
    let base = Arc::new(RwLock::new(hub.base.clone()));
    let answered = Arc::new(AtomicUsize::new(0));
    let http = agent_orch::http::http_client_builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut workers = Vec::new();
    for n in 0..WORKERS {
        let (base, answered, http) = (Arc::clone(&base), Arc::clone(&answered), http.clone());
        workers.push(tokio::spawn(async move {
            let agent = format!("agent-{n}");
            let mut seen: Vec<(i64, i64)> = Vec::new();
            let mut registered_at = String::new();
            // After a cut, a claim may have been made whose answer never came: ask the hub for
            // this agent's active assignments, as `agent-orch worker` does.
            let mut unsure = false;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{agent} never finished"
                );
                let url = base.read().await.clone();
                if registered_at != url {
                    let beat = http
                        .post(format!("{url}/api/agents/heartbeat"))
                        .bearer_auth(TOKEN)
                        .json(&json!({"id": agent}))
                        .send()
                        .await;
                    if beat.is_err() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    registered_at = url.clone();
                }
                if unsure {
                    let Ok(response) = http
                        .get(format!(
                            "{url}/api/assignments?agent_id={agent}&status=active"
                        ))
                        .send()
                        .await
                    else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let Ok(active) = response.json::<Vec<serde_json::Value>>().await else {
                        continue;
                    };
                    for assignment in active {
                        let found = (
                            assignment["task_id"].as_i64().unwrap(),
                            assignment["id"].as_i64().unwrap(),
                        );
                        if !seen.contains(&found) {
                            seen.push(found);
                        }
                    }
                    unsure = false;
                }
                let response = http
                    .post(format!("{url}/api/assignments/claim"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"agent_id": agent}))
                    .send()
                    .await;
                // A connection refused or cut by the kill: wait for the restarted hub.
                let Ok(response) = response else {
                    unsure = true;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                match response.status().as_u16() {
                    200 => {
                        let Ok(claim) = response.json::<serde_json::Value>().await else {
                            unsure = true;
                            continue;
                        };
                        seen.push((
                            claim["task"]["id"].as_i64().unwrap(),
                            claim["assignment"]["id"].as_i64().unwrap(),
                        ));
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    204 => return (agent, seen),
                    other => panic!("claim answered {other}"),
                }
            }
        }));
    }
    while answered.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    hub.kill9().await;
    let killed_at = answered.load(Ordering::SeqCst);
    assert!(killed_at < TASKS, "the load was over before the kill");
    let restarted = HubProcess::start(&db.url).await;
    *base.write().await = restarted.base.clone();

    let mut seen_by: HashMap<i64, (String, i64)> = HashMap::new();
    for worker in workers {
        let (agent, seen) = worker.await.unwrap();
        for (task, assignment) in seen {
            let previous = seen_by.insert(task, (agent.clone(), assignment));
            assert!(
                previous.is_none(),
                "task {task} handed out twice: {previous:?} and {agent}"
            );
        }
    }
    drop(restarted);

    let store = Store::connect(&db.url).await.unwrap();
    let active = store
        .assignments(None, Some(AssignmentStatus::Active))
        .await
        .unwrap();
    let all = store.assignments(None, None).await.unwrap();
    assert_eq!(all.len(), active.len(), "no assignment ended or duplicated");
    let active_tasks: HashSet<i64> = active.iter().map(|a| a.task_id).collect();
    assert_eq!(
        active_tasks.len(),
        active.len(),
        "a task has two active assignments"
    );
    let tasks = store.tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(tasks.len(), TASKS);
    for task in &tasks {
        assert_eq!(
            task.status,
            TaskStatus::InProgress,
            "task {} was lost",
            task.key
        );
        assert!(
            active_tasks.contains(&task.id),
            "task {} has no assignment",
            task.key
        );
    }
    // What the workers know (told by a claim, or found afterwards) is what the database
    // recorded: every task, each with exactly one agent.
    assert_eq!(seen_by.len(), TASKS, "tasks no worker knows it holds");
    for assignment in &active {
        let (agent, id) = &seen_by[&assignment.task_id];
        assert_eq!((&assignment.agent_id, assignment.id), (agent, *id));
    }
    store.close().await;
}

/// Real `agent-orch worker` processes working through a plan while the hub is killed with
/// SIGKILL and restarted on the same address: every task ends done, by exactly one assignment,
/// and every worker ends cleanly. Claims answered into the void are found again, reports cut
/// off are repeated.
async fn fleet_survives_kill_nine(db: HubDb) {
    const FLEET_TASKS: usize = 60;
    const FLEET: usize = 6;
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("workflows")).unwrap();
    std::fs::write(
        repo.path().join("workflows/step.yaml"),
        "name: step\nsafety: {max_iterations: 1}\nsteps:\n  - {id: work, gate: \"sleep 0.05\"}\n",
    )
    .unwrap();
    let store = Store::connect(&db.url).await.unwrap();
    let tasks: Vec<NewTask> = (0..FLEET_TASKS)
        .map(|n| NewTask {
            workflow: Some("workflows/step.yaml".into()),
            ..NewTask::new(format!("F-{n}"), "fleet")
        })
        .collect();
    store.import_plan("fleet", None, &tasks).await.unwrap();

    // A fixed address, so the workers find the restarted hub where the first one was.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let tokens = [("AGENT_ORCH_HUB_TOKENS", TOKEN)];
    let (hub, _) = HubProcess::start_with(&db.url, &listen, &[], &tokens).await;
    let mut workers = Vec::new();
    for n in 0..FLEET {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-orch"))
            .args(["worker", "--hub", &hub.base, "--id", &format!("fleet-{n}")])
            .args(["--workdir", repo.path().to_str().unwrap()])
            .args([
                "--exit-when-idle",
                "--poll-interval",
                "50ms",
                "--heartbeat-interval",
                "1s",
            ])
            .env("AGENT_ORCH_HUB_TOKEN", TOKEN)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        workers.push(child);
    }
    // Kill the hub once a third of the plan is done, while workers are mid-task.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = store
            .tasks(&TaskFilter {
                status: Some(TaskStatus::Done),
                ..TaskFilter::default()
            })
            .await
            .unwrap()
            .len();
        if done >= FLEET_TASKS / 3 {
            assert!(done < FLEET_TASKS, "the plan was done before the kill");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fleet made no progress"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hub.kill9().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (restarted, _) = HubProcess::start_with(&db.url, &listen, &[], &tokens).await;

    for worker in workers {
        let output = tokio::time::timeout(Duration::from_secs(90), worker.wait_with_output())
            .await
            .expect("every worker finishes the plan")
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
    }
    drop(restarted);

    let assignments = store.assignments(None, None).await.unwrap();
    for task in store.tasks(&TaskFilter::default()).await.unwrap() {
        assert_eq!(
            task.status,
            TaskStatus::Done,
            "task {} is not done",
            task.key
        );
        let mine: Vec<_> = assignments
            .iter()
            .filter(|a| a.task_id == task.id)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "task {} was assigned {} times: {mine:?}",
            task.key,
            mine.len()
        );
        assert_eq!(mine[0].status, AssignmentStatus::Completed);
        // Reports retried across the restart are kept once.
        let evidence = store.evidence_for(task.id).await.unwrap();
        let distinct: HashSet<_> = evidence.iter().map(|e| (e.kind, &e.reference)).collect();
        assert!(!evidence.is_empty(), "task {} has no evidence", task.key);
        assert_eq!(distinct.len(), evidence.len(), "{evidence:?}");
    }
    store.close().await;
}
