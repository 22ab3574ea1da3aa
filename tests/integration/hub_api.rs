//! The hub's HTTP API over a real socket with a real client, on SQLite and on PostgreSQL:
//! every endpoint of the seed, the claim, auth, limits, CORS, headers, OpenAPI and `/ws`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent_orch::hub::model::TaskStatus;
use agent_orch::hub::plan::Plan;
use agent_orch::hub::store::NewTask;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use agent_orch::core::secret::Secret;
use agent_orch::hub::pull_requests::PullRequestPolling;

use crate::support::forge_fake::{FakeState, Flavor, ForgeFake, ORG, OWNER, REPOSITORY_NAME};
use crate::support::hub_db::{HubDb, on_both_stores};
use crate::support::hub_server::{ALLOWED_ORIGIN, EventStream, TOKEN, TestHub};

on_both_stores! {
    the_seed_api_works_end_to_end => seed_api_end_to_end;
    concurrent_http_claims_never_share_a_task => concurrent_http_claims;
    two_replicas_on_one_database_never_share_a_task => two_replicas;
    websocket_subscribers_see_changes_as_they_happen => websocket_events;
    silent_workers_lose_their_tasks_to_the_reaper => reaper_requeues;
    a_held_task_set_back_by_hand_is_refused_and_other_claims_go_on => held_task_set_back;
    a_task_in_review_is_done_when_its_pull_request_merges => pull_requests_end_reviews;
    the_hub_polls_github_and_azure_repos_for_merged_pull_requests => polled_reviews;
    a_forge_that_rate_limits_the_hub_is_left_alone_until_its_wait_is_over => rate_limited_polls;
    replicas_take_turns_polling_pull_requests => replicas_poll_in_turn;
}

async fn seeded_hub(db: HubDb) -> TestHub {
    let hub = TestHub::start(db).await;
    let plan = Plan::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet-plan.yaml"))
        .unwrap();
    hub.hub
        .state
        .store
        .import_plan(
            &plan.project.name,
            plan.project.repo.as_deref(),
            &plan.tasks(),
        )
        .await
        .unwrap();
    hub
}

fn keys(tasks: &Value) -> Vec<String> {
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_owned())
        .collect()
}

async fn seed_api_end_to_end(db: HubDb) {
    let hub = seeded_hub(db).await;

    let (status, health) = hub.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["database"], "ok");

    let (status, tasks) = hub.get("/api/tasks").await;
    assert_eq!(status, 200);
    assert_eq!(tasks.as_array().unwrap().len(), 27);
    let (_, done) = hub.get("/api/tasks?status=done").await;
    assert_eq!(keys(&done), ["E4-01", "E4-02", "E4-03", "E4-04", "E4-05"]);
    let (_, epic) = hub
        .get("/api/tasks?epic=Epic%202%3A%20DI%20Container%20Integration")
        .await;
    assert_eq!(epic.as_array().unwrap().len(), 5);
    let (status, error) = hub.get("/api/tasks?status=doing").await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown task status `doing`"),
        "{error}"
    );
    let (status, error) = hub.get("/api/tasks/abc").await;
    assert_eq!(status, 400, "{error}");
    let (status, error) = hub.get("/api/tasks/99999").await;
    assert_eq!(
        (status, error["error"].as_str().unwrap()),
        (404, "task 99999 not found")
    );
    let (_, ready) = hub.get("/api/tasks/ready/list").await;
    assert_eq!(keys(&ready), ["E1-01", "E3-01"]);

    // Writes need the token.
    let anonymous = hub
        .http
        .post(hub.url("/api/agents/heartbeat"))
        .json(&json!({"id": "agent-x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = hub
        .http
        .post(hub.url("/api/agents/heartbeat"))
        .bearer_auth("not-the-token-0123456789")
        .json(&json!({"id": "agent-x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let (status, agent) = hub
        .post(
            "/api/agents/heartbeat",
            json!({"id": "agent-x", "host": "vm1", "capabilities": ["backend"]}),
        )
        .await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent["status"], "active");
    let (status, error) = hub
        .post("/api/agents/heartbeat", json!({"id": "bad id!"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("invalid agent id"),
        "{error}"
    );
    let (status, error) = hub
        .post("/api/agents/heartbeat", json!({"id": "a", "colour": 1}))
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{error}"
    );
    let malformed = hub
        .http
        .post(hub.url("/api/agents/heartbeat"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let huge = hub
        .http
        .post(hub.url("/api/git/evidence"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"task_id": 1, "kind": "pr", "reference": "{}"}}"#,
            "x".repeat(100_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);

    // Claim, progress, complete.
    let (status, claim) = hub
        .post("/api/assignments/claim", json!({"agent_id": "agent-x"}))
        .await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(claim["task"]["key"], "E1-01");
    let assignment = claim["assignment"]["id"].as_i64().unwrap();
    let task = claim["task"]["id"].as_i64().unwrap();
    let (status, error) = hub
        .patch(
            &format!("/api/assignments/{assignment}/progress"),
            json!({"progress": 150}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"],
        "`progress` must be between 0 and 100, got 150"
    );
    let (status, progressed) = hub
        .patch(
            &format!("/api/assignments/{assignment}/progress"),
            json!({"progress": 50, "note": "half"}),
        )
        .await;
    assert_eq!((status, progressed["progress"].as_i64()), (200, Some(50)));
    let (_, assignments) = hub
        .get("/api/assignments?agent_id=agent-x&status=active")
        .await;
    assert_eq!(assignments.as_array().unwrap().len(), 1);
    let (status, _) = hub
        .patch(
            &format!("/api/tasks/{task}/git"),
            json!({"branch": "feature/e1-01", "pr_url": "https://example.test/pr/7"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, branches) = hub.get("/api/git/branches").await;
    assert_eq!(keys(&branches), ["E1-01"]);
    let (status, _) = hub
        .patch(
            &format!("/api/assignments/{assignment}/progress"),
            json!({"progress": 100, "status": "completed", "review": true}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, queue) = hub.get("/api/git/merge-queue").await;
    assert_eq!(keys(&queue), ["E1-01"]);
    let (status, again) = hub
        .patch(
            &format!("/api/assignments/{assignment}/progress"),
            json!({"progress": 10}),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    let (status, _) = hub
        .patch(
            &format!("/api/tasks/{task}/progress"),
            json!({"progress": 100, "status": "done"}),
        )
        .await;
    assert_eq!(status, 200);

    // Manual assignment respects readiness.
    let (_, all) = hub.get("/api/tasks").await;
    let id_of = |key: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == key)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (status, error) = hub
        .post(
            "/api/assignments",
            json!({"task_id": id_of("E1-07"), "agent_id": "agent-x"}),
        )
        .await;
    assert_eq!(status, 409, "{error}");
    let (status, created) = hub
        .post(
            "/api/assignments",
            json!({"task_id": id_of("E1-02"), "agent_id": "agent-x"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");

    // Evidence.
    let (status, _) = hub
        .post("/api/git/evidence", json!({"task_id": task, "agent_id": "agent-x", "kind": "commit", "reference": "abc123"}))
        .await;
    assert_eq!(status, 201);
    let (status, error) = hub
        .post(
            "/api/git/evidence",
            json!({"task_id": task, "kind": "tweet", "reference": "x"}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant `tweet`"),
        "{error}"
    );
    // A retry with the same idempotency key is answered with the first record, not a copy.
    let keyed = json!({"task_id": task, "kind": "junit", "reference": "runs/1/junit.xml", "idempotency_key": "a-1/junit"});
    let (status, first) = hub.post("/api/git/evidence", keyed.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = hub.post("/api/git/evidence", keyed).await;
    assert_eq!((status, &again), (200, &first));
    let (status, error) = hub
        .post("/api/git/evidence", json!({"task_id": task, "kind": "junit", "reference": "runs/2/junit.xml", "idempotency_key": "a-1/junit"}))
        .await;
    assert_eq!(status, 409, "{error}");
    let (_, evidence) = hub.get(&format!("/api/git/evidence/{task}")).await;
    let references: Vec<_> = evidence
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reference"].as_str().unwrap())
        .collect();
    assert_eq!(references, ["abc123", "runs/1/junit.xml"]);

    // Progress.
    let (_, summary) = hub.get("/api/progress/summary").await;
    assert_eq!(summary["total_tasks"], 27);
    assert_eq!(summary["done_tasks"], 6);
    assert_eq!(summary["total_hours"], 592.0);
    assert_eq!(summary["active_agents"], 1);
    let (_, agents) = hub.get("/api/progress/agents").await;
    assert_eq!(agents[0]["active_assignments"], 1);
    assert_eq!(agents[0]["completed_assignments"], 1);
    assert_eq!(agents[0]["healthy"], true);
    let (_, projects) = hub.get("/api/projects").await;
    let project = projects[0]["id"].as_i64().unwrap();
    let (status, snapshot) = hub
        .post("/api/progress/snapshot", json!({"project_id": project}))
        .await;
    assert_eq!((status, snapshot["done_tasks"].as_i64()), (201, Some(6)));
    let (_, history) = hub.get(&format!("/api/progress/history/{project}")).await;
    assert_eq!(history.as_array().unwrap().len(), 1);

    // Deactivation gives work back.
    let (status, agent) = hub.post("/api/agents/agent-x/deactivate", json!({})).await;
    assert_eq!(
        (status, agent["status"].as_str()),
        (200, Some("deactivated"))
    );
    let (_, task) = hub.get(&format!("/api/tasks/{}", id_of("E1-02"))).await;
    assert_eq!(task["status"], "pending");
    let (status, _) = hub
        .post("/api/assignments/claim", json!({"agent_id": "agent-x"}))
        .await;
    assert_eq!(status, 409);
    let (status, _) = hub.get("/api/agents/nobody").await;
    assert_eq!(status, 404);

    // Nothing left to claim is a 204.
    hub.post("/api/agents/heartbeat", json!({"id": "agent-y"}))
        .await;
    let mut claimed = 0;
    loop {
        let (status, _) = hub
            .post("/api/assignments/claim", json!({"agent_id": "agent-y"}))
            .await;
        if status == 204 {
            break;
        }
        assert_eq!(status, 200);
        claimed += 1;
    }
    assert_eq!(claimed, 7, "E1-02..06, E2-01 and E3-01, each once");

    // Unknown endpoints answer in JSON too, and every answer carries the security headers.
    let response = hub.http.get(hub.url("/api/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    for header in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "referrer-policy",
    ] {
        assert!(response.headers().contains_key(header), "missing {header}");
    }
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    hub.stop().await;
}

async fn concurrent_http_claims(db: HubDb) {
    let hub = Arc::new(TestHub::start(db).await);
    let tasks: Vec<_> = (0..150)
        .map(|n| NewTask::new(format!("T-{n}"), "load"))
        .collect();
    hub.hub
        .state
        .store
        .import_plan("load", None, &tasks)
        .await
        .unwrap();
    let mut workers = Vec::new();
    for n in 0..16 {
        let hub = Arc::clone(&hub);
        workers.push(tokio::spawn(async move {
            let id = format!("w{n}");
            hub.post("/api/agents/heartbeat", json!({"id": id})).await;
            let mut mine = Vec::new();
            loop {
                let (status, claim) = hub
                    .post("/api/assignments/claim", json!({"agent_id": id}))
                    .await;
                match status {
                    200 => mine.push(claim["task"]["id"].as_i64().unwrap()),
                    204 => return mine,
                    other => panic!("claim answered {other}: {claim}"),
                }
            }
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (150, 150));
}

async fn two_replicas(db: HubDb) {
    let first = TestHub::start(db).await;
    let second = first.replica(None).await;
    let tasks: Vec<_> = (0..120)
        .map(|n| NewTask::new(format!("R-{n}"), "replicas"))
        .collect();
    first
        .hub
        .state
        .store
        .import_plan("replicas", None, &tasks)
        .await
        .unwrap();
    let bases = [first.base.clone(), format!("http://{}", second.addr)];
    let mut workers = Vec::new();
    for n in 0..12 {
        // Half the workers talk to each replica.
        let base = bases[n % 2].clone();
        let http = first.http.clone();
        workers.push(tokio::spawn(async move {
            let id = format!("r{n}");
            http.post(format!("{base}/api/agents/heartbeat"))
                .bearer_auth(TOKEN)
                .json(&json!({"id": id}))
                .send()
                .await
                .unwrap();
            let mut mine = Vec::new();
            loop {
                let response = http
                    .post(format!("{base}/api/assignments/claim"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"agent_id": id}))
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    200 => {
                        let claim: Value = response.json().await.unwrap();
                        mine.push(claim["task"]["id"].as_i64().unwrap());
                    }
                    204 => return mine,
                    other => panic!("claim answered {other}"),
                }
            }
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (120, 120));
    second.stop().await.unwrap();
    first.stop().await;
}

async fn websocket_events(db: HubDb) {
    let hub = seeded_hub(db).await;
    let mut events = EventStream::connect(hub.hub.addr).await;
    hub.post("/api/agents/heartbeat", json!({"id": "agent-ws"}))
        .await;
    let event = events.next().await;
    assert_eq!(
        (event["type"].as_str(), event["data"]["id"].as_str()),
        (Some("agent.updated"), Some("agent-ws"))
    );
    assert!(event["at"].as_i64().unwrap() > 0);
    let (_, claim) = hub
        .post("/api/assignments/claim", json!({"agent_id": "agent-ws"}))
        .await;
    let created = events.next().await;
    assert_eq!(created["type"], "assignment.created");
    assert_eq!(created["data"]["id"], claim["assignment"]["id"]);
    let task = events.next().await;
    assert_eq!(
        (task["type"].as_str(), task["data"]["status"].as_str()),
        (Some("task.updated"), Some("in_progress"))
    );
    let assignment = claim["assignment"]["id"].as_i64().unwrap();
    hub.patch(
        &format!("/api/assignments/{assignment}/progress"),
        json!({"progress": 30}),
    )
    .await;
    let updated = events.next().await;
    assert_eq!(
        (
            updated["type"].as_str(),
            updated["data"]["progress"].as_i64()
        ),
        (Some("assignment.updated"), Some(30))
    );
    // Shutting down closes subscribers instead of waiting for them.
    let stopped = tokio::time::timeout(Duration::from_secs(5), hub.stop()).await;
    assert!(stopped.is_ok(), "graceful shutdown waited on the WebSocket");
    assert!(events.closed().await, "the stream was not closed");
}

/// Several replicas on one PostgreSQL database: what happens through one reaches the `/ws`
/// subscribers of the others, once, including events too large for one notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_relay_their_events_to_each_others_subscribers() {
    let first = TestHub::start(HubDb::postgres().await).await;
    let second = first.replica(None).await;
    let long = "a long description, ".repeat(2_000);
    let task = NewTask {
        description: long.clone(),
        ..NewTask::new("BIG-1", "relay")
    };
    first
        .hub
        .state
        .store
        .import_plan("relay", None, &[task])
        .await
        .unwrap();
    let mut on_first = EventStream::connect(first.hub.addr).await;
    let mut on_second = EventStream::connect(second.addr).await;

    // Made through the second replica: its own subscriber sees it once, the first's too.
    let through_second = format!("http://{}/api/agents/heartbeat", second.addr);
    let response = first
        .http
        .post(through_second)
        .bearer_auth(TOKEN)
        .json(&json!({"id": "agent-two"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for events in [&mut on_second, &mut on_first] {
        let event = events.next().await;
        assert_eq!(
            (event["type"].as_str(), event["data"]["id"].as_str()),
            (Some("agent.updated"), Some("agent-two"))
        );
    }

    // Made through the first: the second replica's subscriber sees each event in order,
    // the 40 KB task whole.
    first
        .post("/api/agents/heartbeat", json!({"id": "agent-one"}))
        .await;
    let (status, claim) = first
        .post("/api/assignments/claim", json!({"agent_id": "agent-one"}))
        .await;
    assert_eq!(status, 200, "{claim}");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(on_second.next().await);
    }
    let kinds: Vec<_> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["agent.updated", "assignment.created", "task.updated"],
        "no duplicate of the second replica's own event, nothing missing"
    );
    assert_eq!(seen[0]["data"]["id"], "agent-one");
    assert_eq!(seen[1]["data"]["id"], claim["assignment"]["id"]);
    assert_eq!(seen[2]["data"]["description"].as_str(), Some(long.as_str()));
    assert_eq!(seen[2]["data"]["status"], "in_progress");

    second.stop().await.unwrap();
    first.stop().await;
}

async fn reaper_requeues(db: HubDb) {
    let hub = TestHub::start_with_timeout(db, Duration::from_millis(300)).await;
    let seeded = seeded_hub_tasks(&hub).await;
    assert_eq!(seeded, 27);
    hub.post("/api/agents/heartbeat", json!({"id": "sleepy"}))
        .await;
    let (_, claim) = hub
        .post("/api/assignments/claim", json!({"agent_id": "sleepy"}))
        .await;
    let task = claim["task"]["id"].as_i64().unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", hub.hub.addr))
        .await
        .unwrap();
    // No heartbeat for longer than the timeout: the reaper gives the task back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, current) = hub.get(&format!("/api/tasks/{task}")).await;
        if current["status"] == "pending" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task never requeued: {current}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, assignment) = hub.get("/api/assignments?agent_id=sleepy").await;
    assert_eq!(assignment[0]["status"], "requeued");
    let mut saw_requeue = false;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(2), socket.next()).await
    {
        if let Ok(text) = message.to_text()
            && text.contains("\"requeued\"")
        {
            saw_requeue = true;
            break;
        }
    }
    assert!(saw_requeue, "no requeue event on /ws");
    let (_, agent) = hub.get("/api/agents/sleepy").await;
    assert_eq!(
        (agent["status"].as_str(), agent["healthy"].as_bool()),
        (Some("offline"), Some(false))
    );
    let _ = socket
        .send(tokio_tungstenite::tungstenite::Message::Close(None))
        .await;
    hub.stop().await;
}

/// The issue's scenario: an operator sets a task an agent holds back to pending. The hub
/// refuses (the agent's assignment would go on), names the assignment to end instead, keeps
/// the held task off the ready list, and the next agent's claim gets the other task.
async fn held_task_set_back(db: HubDb) {
    let hub = TestHub::start(db).await;
    let tasks = [NewTask::new("a", "e"), NewTask::new("b", "e")];
    hub.hub
        .state
        .store
        .import_plan("held", None, &tasks)
        .await
        .unwrap();
    for agent in ["x1", "x2"] {
        let (status, _) = hub
            .post("/api/agents/heartbeat", json!({"id": agent}))
            .await;
        assert_eq!(status, 200);
    }
    let (status, first) = hub
        .post("/api/assignments/claim", json!({"agent_id": "x1"}))
        .await;
    assert_eq!((status, first["task"]["key"].as_str()), (200, Some("a")));
    let a = first["task"]["id"].as_i64().unwrap();
    let assignment = first["assignment"]["id"].as_i64().unwrap();

    let set_back = json!({"progress": 0, "status": "pending"});
    let (status, refused) = hub
        .patch(&format!("/api/tasks/{a}/progress"), set_back.clone())
        .await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("held by agent `x1`")
            && message.contains(&format!("PATCH /api/assignments/{assignment}/progress")),
        "{message}"
    );
    let (_, task) = hub.get(&format!("/api/tasks/{a}")).await;
    assert_eq!(
        (task["status"].as_str(), task["assigned_agent"].as_str()),
        (Some("in_progress"), Some("x1"))
    );
    let (_, ready) = hub.get("/api/tasks/ready/list").await;
    assert_eq!(keys(&ready), ["b"]);
    let (status, second) = hub
        .post("/api/assignments/claim", json!({"agent_id": "x2"}))
        .await;
    assert_eq!(
        (status, second["task"]["key"].as_str()),
        (200, Some("b")),
        "{second}"
    );

    // Progress alone is not a status change; the holder keeps its task.
    let (status, task) = hub
        .patch(&format!("/api/tasks/{a}/progress"), json!({"progress": 30}))
        .await;
    assert_eq!((status, task["progress"].as_i64()), (200, Some(30)));
    // The way the message names: end the assignment, then the task is the operator's.
    let (status, _) = hub
        .patch(
            &format!("/api/assignments/{assignment}/progress"),
            json!({"progress": 0, "status": "released"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, task) = hub
        .patch(&format!("/api/tasks/{a}/progress"), set_back)
        .await;
    assert_eq!((status, task["status"].as_str()), (200, Some("pending")));
    // In progress means held: nobody holds `a` now, so it cannot be set so by hand.
    let (status, refused) = hub
        .patch(
            &format!("/api/tasks/{a}/progress"),
            json!({"progress": 10, "status": "in_progress"}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("cannot be set to `in_progress` by hand"),
        "{refused}"
    );
    hub.stop().await;
}

/// serde reads a struct from an array too (`["agent-1"]` as `{"agent_id": "agent-1"}`); every
/// endpoint that takes a body, as the OpenAPI document lists them, refuses anything but an
/// object.
#[tokio::test]
async fn every_request_body_must_be_a_json_object() {
    let hub = TestHub::start(HubDb::sqlite()).await;
    let (_, doc) = hub.get("/openapi.json").await;
    let mut checked = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "1")
            .replace("{task_id}", "1")
            .replace("{project_id}", "1");
        for (method, operation) in operations.as_object().unwrap() {
            if operation.get("requestBody").is_none() {
                continue;
            }
            for body in [json!(["agent-1"]), json!([1, "agent-1"]), json!(null)] {
                let (status, error) = hub
                    .send(method.to_uppercase().parse().unwrap(), &concrete, body)
                    .await;
                assert_eq!(status, 422, "{method} {path}: {error}");
                assert!(
                    error["error"]
                        .as_str()
                        .unwrap()
                        .contains("expected a JSON object"),
                    "{method} {path}: {error}"
                );
            }
            checked.push(format!("{method} {path}"));
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "patch /api/assignments/{id}/progress",
            "patch /api/tasks/{id}/git",
            "patch /api/tasks/{id}/progress",
            "post /api/agents/heartbeat",
            "post /api/assignments",
            "post /api/assignments/claim",
            "post /api/git/evidence",
            "post /api/progress/snapshot",
            "post /api/tasks/{id}/pull-request",
        ]
    );
    hub.stop().await;
}

async fn seeded_hub_tasks(hub: &TestHub) -> usize {
    let plan = Plan::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet-plan.yaml"))
        .unwrap();
    hub.hub
        .state
        .store
        .import_plan(&plan.project.name, None, &plan.tasks())
        .await
        .unwrap();
    plan.tasks().len()
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routed_endpoints() {
    let hub = TestHub::start(HubDb::sqlite()).await;
    let (status, doc) = hub.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/tasks",
        "/api/tasks/{id}",
        "/api/tasks/ready/list",
        "/api/tasks/{id}/progress",
        "/api/tasks/{id}/git",
        "/api/tasks/{id}/pull-request",
        "/api/agents",
        "/api/agents/{id}",
        "/api/agents/heartbeat",
        "/api/agents/{id}/deactivate",
        "/api/assignments",
        "/api/assignments/claim",
        "/api/assignments/{id}/progress",
        "/api/progress/summary",
        "/api/progress/agents",
        "/api/progress/snapshot",
        "/api/progress/history/{project_id}",
        "/api/progress/forecast/{project_id}",
        "/api/git/merge-queue",
        "/api/git/branches",
        "/api/git/evidence",
        "/api/git/evidence/{task_id}",
        "/health",
        "/metrics",
        "/ws",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    // Every documented operation is routed: the router's 404 names unrouted paths, and a
    // wrong method is a 405.
    for (path, operations) in paths {
        let concrete = path
            .replace("{id}", "1")
            .replace("{task_id}", "1")
            .replace("{project_id}", "1");
        for method in operations.as_object().unwrap().keys() {
            let response = hub
                .http
                .request(method.to_uppercase().parse().unwrap(), hub.url(&concrete))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert!(
                status != 405 && !body.contains("no such endpoint"),
                "{method} {path}: {status} {body}"
            );
        }
        let schema_refs = operations.to_string();
        for reference in schema_refs.split("#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{name} is not defined"
            );
        }
    }
    // CORS: the allowed origin gets an answer to its preflight, others do not.
    let preflight = |origin: &'static str| {
        hub.http
            .request(reqwest::Method::OPTIONS, hub.url("/api/agents/heartbeat"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight(ALLOWED_ORIGIN).await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        ALLOWED_ORIGIN
    );
    let other = preflight("https://evil.example.test").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    hub.stop().await;
}

/// Claims the next task as `agent`, records a junit outcome and its pull request (`pr_url`, else
/// one of `forge.test`), and completes it into review; the task's id.
/// Imports `tasks` as project `project` and registers `agent`, ready to claim them.
async fn import_with_agent(hub: &TestHub, project: &str, tasks: &[NewTask], agent: &str) {
    hub.hub
        .state
        .store
        .import_plan(project, None, tasks)
        .await
        .unwrap();
    let (status, body) = hub
        .post("/api/agents/heartbeat", json!({"id": agent}))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn complete_into_review(hub: &TestHub, agent: &str, pr_url: Option<String>) -> i64 {
    let (status, claim) = hub
        .post("/api/assignments/claim", json!({"agent_id": agent}))
        .await;
    assert_eq!(status, 200, "{claim}");
    let task = claim["task"]["id"].as_i64().unwrap();
    let assignment = claim["assignment"]["id"].as_i64().unwrap();
    let pr_url = pr_url.unwrap_or_else(|| format!("https://forge.test/pr/{task}"));
    for (kind, reference) in [
        ("junit", "runs/1/junit.xml".to_owned()),
        ("pr", pr_url.clone()),
    ] {
        let evidence = json!({"task_id": task, "kind": kind, "reference": reference});
        assert_eq!(hub.post("/api/git/evidence", evidence).await.0, 201);
    }
    let git = json!({"branch": format!("fix-{task}"), "pr_url": pr_url});
    assert_eq!(
        hub.patch(&format!("/api/tasks/{task}/git"), git).await.0,
        200
    );
    let completed = json!({"progress": 100, "status": "completed", "review": true});
    let (status, _) = hub
        .patch(
            &format!("/api/assignments/{assignment}/progress"),
            completed,
        )
        .await;
    assert_eq!(status, 200);
    task
}

async fn pull_requests_end_reviews(db: HubDb) {
    let hub = TestHub::start(db).await;
    let tasks = [
        NewTask {
            priority: 2,
            ..NewTask::new("merged", "e")
        },
        NewTask {
            priority: 1,
            ..NewTask::new("closed", "e")
        },
        NewTask {
            depends_on: vec!["merged".into()],
            ..NewTask::new("after", "e")
        },
    ];
    import_with_agent(&hub, "reviews", &tasks, "x1").await;
    let merged = complete_into_review(&hub, "x1", None).await;
    let closed = complete_into_review(&hub, "x1", None).await;
    // `after` waits for `merged`, which is in review, not done.
    let (status, nothing) = hub
        .post("/api/assignments/claim", json!({"agent_id": "x1"}))
        .await;
    assert_eq!(status, 204, "{nothing}");

    // The queue: both tasks with their pull request and their checks (junit, not the pr).
    let (status, queue) = hub.get("/api/git/merge-queue").await;
    assert_eq!(status, 200);
    assert_eq!(keys(&queue), ["merged", "closed"]);
    let first = &queue[0];
    assert_eq!(first["pr_url"], format!("https://forge.test/pr/{merged}"));
    assert_eq!(first["branch"], format!("fix-{merged}"));
    let checks = first["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(
        (checks[0]["kind"].as_str(), checks[0]["reference"].as_str()),
        (Some("junit"), Some("runs/1/junit.xml"))
    );

    let (status, error) = hub
        .post(
            &format!("/api/tasks/{merged}/pull-request"),
            json!({"state": "merged"}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    let (status, done) = hub
        .post(
            &format!("/api/tasks/{merged}/pull-request"),
            json!({"merged": true}),
        )
        .await;
    assert_eq!((status, done["status"].as_str()), (200, Some("done")));
    let (status, blocked) = hub
        .post(
            &format!("/api/tasks/{closed}/pull-request"),
            json!({"merged": false}),
        )
        .await;
    assert_eq!((status, blocked["status"].as_str()), (200, Some("blocked")));
    // Told twice, the second is refused: the task is no longer in review.
    let (status, error) = hub
        .post(
            &format!("/api/tasks/{merged}/pull-request"),
            json!({"merged": true}),
        )
        .await;
    assert_eq!(status, 409, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("not in review"),
        "{error}"
    );
    let (status, _) = hub
        .post("/api/tasks/999999/pull-request", json!({"merged": true}))
        .await;
    assert_eq!(status, 404);
    let (_, queue) = hub.get("/api/git/merge-queue").await;
    assert_eq!(keys(&queue), Vec::<String>::new());
    // The merge made `after` ready.
    let (status, next) = hub
        .post("/api/assignments/claim", json!({"agent_id": "x1"}))
        .await;
    assert_eq!((status, next["task"]["key"].as_str()), (200, Some("after")));
    hub.stop().await;
}

const FORGE_TOKEN: &str = "forge-token-3f9a";

/// The hub asks each task's forge: merged is done, closed unmerged is blocked, open stays.
async fn polled_reviews(db: HubDb) {
    let github = ForgeFake::start(Flavor::GitHub, FORGE_TOKEN);
    let azure = ForgeFake::start(Flavor::AzureRepos, FORGE_TOKEN);
    let hub = TestHub::start_polling(
        db,
        PullRequestPolling {
            token: Secret::new(FORGE_TOKEN),
            github_api: github.api_url(),
            interval: Duration::from_millis(100),
        },
    )
    .await;
    let tasks = ["gh-merged", "gh-closed", "az-merged", "az-open"];
    let plan: Vec<NewTask> = tasks
        .iter()
        .zip((1..=4).rev())
        .map(|(key, priority)| NewTask {
            priority,
            ..NewTask::new(*key, "e")
        })
        .collect();
    import_with_agent(&hub, "polled", &plan, "x1").await;
    let github_url = |id: u64| format!("https://github.com/{OWNER}/fleet/pull/{id}");
    // As the pull_request step names it: the collection, the project (encoded), the repository.
    let azure_url = |id: u64| {
        format!(
            "{}Fleet%20Ops/_git/{REPOSITORY_NAME}/pullrequest/{id}",
            azure.collection_uri()
        )
    };
    let gh_merged = github.open_pull_request("fix-1");
    let gh_closed = github.open_pull_request("fix-2");
    let az_merged = azure.open_pull_request("fix-3");
    let az_open = azure.open_pull_request("fix-4");
    let mut ids = Vec::new();
    for url in [
        github_url(gh_merged),
        github_url(gh_closed),
        azure_url(az_merged),
        azure_url(az_open),
    ] {
        ids.push(complete_into_review(&hub, "x1", Some(url)).await);
    }
    github.set_state(gh_merged, FakeState::Merged);
    github.set_state(gh_closed, FakeState::Closed);
    azure.set_state(az_merged, FakeState::Merged);

    let expected = ["done", "blocked", "done", "review"];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let statuses = loop {
        let mut statuses = Vec::new();
        for id in &ids {
            let (_, task) = hub.get(&format!("/api/tasks/{id}")).await;
            statuses.push(task["status"].as_str().unwrap().to_owned());
        }
        if statuses == expected || tokio::time::Instant::now() > deadline {
            break statuses;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(statuses, expected);
    let (_, queue) = hub.get("/api/git/merge-queue").await;
    assert_eq!(keys(&queue), ["az-open"]);

    // The calls, with the hub's token, as each API takes it.
    let bearer = format!("Bearer {FORGE_TOKEN}");
    let github_get = github
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path == format!("/repos/{OWNER}/fleet/pulls/{gh_merged}"))
        .expect("the hub read the GitHub pull request");
    assert_eq!(
        (github_get.status, github_get.authorization.as_deref()),
        (200, Some(bearer.as_str()))
    );
    let azure_get = azure
        .requests()
        .into_iter()
        .find(|r| {
            r.method == "GET"
                && r.path
                    == format!(
                        "/{ORG}/Fleet%20Ops/_apis/git/repositories/{REPOSITORY_NAME}/pullrequests/{az_open}"
                    )
        })
        .expect("the hub read the Azure Repos pull request");
    assert_eq!(
        (azure_get.status, azure_get.query.as_str()),
        (200, "api-version=7.1")
    );
    hub.stop().await;
}

async fn rate_limited_polls(db: HubDb) {
    let github = ForgeFake::start(Flavor::GitHub, FORGE_TOKEN);
    let azure = ForgeFake::start(Flavor::AzureRepos, FORGE_TOKEN);
    let hub = TestHub::start_polling(
        db,
        PullRequestPolling {
            token: Secret::new(FORGE_TOKEN),
            github_api: github.api_url(),
            interval: Duration::from_millis(20),
        },
    )
    .await;
    let plan = [NewTask::new("gh", "e"), NewTask::new("az", "e")];
    import_with_agent(&hub, "limited", &plan, "x1").await;
    // GitHub says its limit resets 3 s from now (epoch seconds: 2-3 s), Azure DevOps to retry
    // after 3 s; both pull requests merge meanwhile.
    github.rate_limit(Some(3));
    azure.rate_limit(Some(3));
    let gh = github.open_pull_request("fix-1");
    let az = azure.open_pull_request("fix-2");
    let urls = [
        format!("https://github.com/{OWNER}/fleet/pull/{gh}"),
        format!(
            "{}Fleet%20Ops/_git/{REPOSITORY_NAME}/pullrequest/{az}",
            azure.collection_uri()
        ),
    ];
    let mut ids = Vec::new();
    for url in urls {
        ids.push(complete_into_review(&hub, "x1", Some(url)).await);
    }
    github.set_state(gh, FakeState::Merged);
    azure.set_state(az, FakeState::Merged);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (github.api_calls().is_empty() || azure.api_calls().is_empty())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Polled every 20 ms, each forge was asked once in this second: the limit's answer paused it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (forge, statuses) in [
        ("GitHub", github.requests()),
        ("Azure Repos", azure.requests()),
    ] {
        let api: Vec<u16> = statuses
            .iter()
            .filter(|r| !r.path.starts_with("/git/"))
            .map(|r| r.status)
            .collect();
        assert_eq!(api.len(), 1, "{forge} asked once while limited: {api:?}");
        assert!(matches!(api[0], 403 | 429), "{forge}: {api:?}");
    }
    for id in &ids {
        let (_, task) = hub.get(&format!("/api/tasks/{id}")).await;
        assert_eq!(task["status"], "review");
    }

    // The limit over, the next poll ends both reviews.
    github.rate_limit(None);
    azure.rate_limit(None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let statuses = loop {
        let mut statuses = Vec::new();
        for id in &ids {
            let (_, task) = hub.get(&format!("/api/tasks/{id}")).await;
            statuses.push(task["status"].as_str().unwrap().to_owned());
        }
        if statuses == ["done", "done"] || tokio::time::Instant::now() > deadline {
            break statuses;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(statuses, ["done", "done"]);
    hub.stop().await;
}

async fn replicas_poll_in_turn(db: HubDb) {
    let github = ForgeFake::start(Flavor::GitHub, FORGE_TOKEN);
    let polling = PullRequestPolling {
        token: Secret::new(FORGE_TOKEN),
        github_api: github.api_url(),
        interval: Duration::from_millis(50),
    };
    let first = TestHub::start_polling(db, polling.clone()).await;
    let second = first.replica(Some(polling)).await;
    import_with_agent(&first, "turns", &[NewTask::new("gh", "e")], "x1").await;
    let pr = github.open_pull_request("fix-1");
    let id = complete_into_review(
        &first,
        "x1",
        Some(format!("https://github.com/{OWNER}/fleet/pull/{pr}")),
    )
    .await;
    let reads = || {
        github
            .api_calls()
            .iter()
            .filter(|call| call.starts_with("GET "))
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reads() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let start = reads();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // One replica polls every 50 ms: at most 20 reads in the second, and a few for ticks
    // delayed into it; two replicas polling would make about 40.
    let in_a_second = reads() - start;
    assert!(
        (1..=24).contains(&in_a_second),
        "{in_a_second} reads of the pull request in a second"
    );

    // The polling replica stops; the other takes over once the lease lapses (150 ms).
    first.hub.stop().await.unwrap_or_else(|err| panic!("{err}"));
    github.set_state(pr, FakeState::Merged);
    let store = &second.state.store;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.task(id).await.unwrap().status != TaskStatus::Done
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.task(id).await.unwrap().status, TaskStatus::Done);
    second.stop().await.unwrap();
}
