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
}

async fn kill_nine_during_claims(db: HubDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let tasks: Vec<NewTask> = (0..TASKS)
        .map(|n| NewTask {
            key: format!("K-{n}"),
            epic: "reliability".into(),
            title: format!("task {n}"),
            description: String::new(),
            estimate_hours: 1.0,
            priority: 0,
            status: TaskStatus::Pending,
            workflow: None,
            depends_on: Vec::new(),
        })
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
            let mut seen = Vec::new();
            let mut registered_at = String::new();
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
                let response = http
                    .post(format!("{url}/api/assignments/claim"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"agent_id": agent}))
                    .send()
                    .await;
                // A connection refused or cut by the kill: wait for the restarted hub.
                let Ok(response) = response else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                match response.status().as_u16() {
                    200 => {
                        let Ok(claim) = response.json::<serde_json::Value>().await else {
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
    // What the workers were told matches what the database recorded. A claim committed just
    // before the kill may never have reached its worker; it is assigned, not lost.
    for assignment in &active {
        if let Some((agent, id)) = seen_by.get(&assignment.task_id) {
            assert_eq!((&assignment.agent_id, assignment.id), (agent, *id));
        }
    }
    let unanswered = TASKS - seen_by.len();
    assert!(
        unanswered <= WORKERS,
        "{unanswered} claims were never answered"
    );
    store.close().await;
}
