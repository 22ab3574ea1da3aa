//! The claim rules on real databases, each on SQLite and on PostgreSQL: required capabilities,
//! timeouts, retry backoff up to `max_attempts`, and retrying a blocked task; with the races
//! each one invites (a timeout against a late report, a retry against concurrent claims).

use std::sync::Arc;
use std::time::Duration;

use agent_orch::hub::model::{AssignmentStatus, TaskStatus};
use agent_orch::hub::store::{NewTask, RetryBackoff, Store, StoreErrorKind};

use crate::support::hub_db::{HubDb, on_both_stores};
use crate::support::hub_server::TestHub;

on_both_stores! {
    a_task_goes_only_to_an_agent_with_every_capability_it_requires => capabilities;
    a_claim_batch_with_two_capability_groups_serves_both => capability_groups;
    capability_groups_take_turns_best_first_in_one_batch => capability_group_turns;
    failures_back_off_exponentially_then_block_and_a_retry_unblocks => backoff_and_retry;
    a_timed_out_assignment_is_failed_and_its_late_report_refused => timeout;
    a_timeout_racing_a_late_report_ends_the_assignment_once => timeout_against_late_report;
    a_retry_racing_claims_hands_the_task_out_once => retry_against_claims;
    a_task_set_back_to_pending_after_review_is_ready_again => pending_after_review;
    retry_over_http_answers_409_unless_blocked_and_is_documented => retry_over_http;
}

fn backoff(base_ms: u64) -> RetryBackoff {
    RetryBackoff {
        base: Duration::from_millis(base_ms),
        cap: Duration::from_secs(3600),
    }
}

async fn store(db: &HubDb, tasks: &[NewTask]) -> Store {
    let store = Store::connect(&db.url).await.unwrap();
    store.import_plan("rules", None, tasks).await.unwrap();
    store
}

fn requiring(key: &str, requires: &[&str]) -> NewTask {
    NewTask {
        requires: requires.iter().map(|c| (*c).to_owned()).collect(),
        ..NewTask::new(key, "e")
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

async fn capabilities(db: HubDb) {
    let store = store(
        &db,
        &[
            requiring("gpu-job", &["gpu", "linux"]),
            requiring("any-job", &[]),
        ],
    )
    .await;
    store
        .heartbeat("plain", "h", &strings(&["linux"]))
        .await
        .unwrap();
    store
        .heartbeat("gpu-box", "h", &strings(&["linux", "gpu", "docker"]))
        .await
        .unwrap();
    // The GPU task comes first in claim order, but the plain agent lacks `gpu`.
    let plain = store.claim("plain").await.unwrap().unwrap();
    assert_eq!(plain.task.key, "any-job");
    assert!(
        store.claim("plain").await.unwrap().is_none(),
        "nothing it can do"
    );
    let gpu_job = store.task(1).await.unwrap();
    assert_eq!(gpu_job.requires, ["gpu", "linux"]);
    let err = store.assign(gpu_job.id, "plain").await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains("it requires `gpu` that agent `plain` lacks"),
        "{err}"
    );
    let gpu = store.claim("gpu-box").await.unwrap().unwrap();
    assert_eq!(
        (gpu.task.key.as_str(), gpu.task.requires.len()),
        ("gpu-job", 2)
    );
}

async fn capability_groups(db: HubDb) {
    let tasks: Vec<NewTask> = (0..6)
        .map(|n| match n % 3 {
            0 => requiring(&format!("t{n}"), &["linux"]),
            1 => requiring(&format!("t{n}"), &["docker"]),
            _ => requiring(&format!("t{n}"), &["gpu"]),
        })
        .collect();
    let store = store(&db, &tasks).await;
    for (agent, capabilities) in [
        ("d1", ["linux", "docker"]),
        ("g1", ["linux", "gpu"]),
        ("d2", ["linux", "docker"]),
        ("g2", ["linux", "gpu"]),
    ] {
        store
            .heartbeat(agent, "h", &strings(&capabilities))
            .await
            .unwrap();
    }
    // Both groups may take the Linux tasks; every claimer still gets a task it can do.
    let claims = store.claim_batch(&["d1", "g1", "d2", "g2"]).await.unwrap();
    assert_eq!(claims.len(), 4, "{claims:?}");
    let mut tasks = std::collections::HashSet::new();
    for claim in &claims {
        assert!(tasks.insert(claim.task.id), "a task handed out twice");
        let agent = store
            .agent(&claim.assignment.agent_id, 60_000)
            .await
            .unwrap();
        for needed in &claim.task.requires {
            assert!(
                agent.agent.capabilities.contains(needed),
                "{} got {} requiring {needed}",
                agent.agent.id,
                claim.task.key
            );
        }
    }
}

async fn capability_group_turns(db: HubDb) {
    // Every worker may take the Linux tasks; each group also has its own kind.
    let tasks: Vec<NewTask> = (0..8)
        .map(|n| match n % 4 {
            0 | 2 => requiring(&format!("t{n}"), &["linux"]),
            1 => requiring(&format!("t{n}"), &["docker"]),
            _ => requiring(&format!("t{n}"), &["gpu"]),
        })
        .collect();
    let store = store(&db, &tasks).await;
    for (agent, capabilities) in [
        ("g1", ["linux", "gpu"]),
        ("d1", ["linux", "docker"]),
        ("g2", ["linux", "gpu"]),
        ("d2", ["linux", "docker"]),
        ("d3", ["linux", "docker"]),
    ] {
        store
            .heartbeat(agent, "h", &strings(&capabilities))
            .await
            .unwrap();
    }
    // The group that asked first (GPU) takes its best tasks first, then the Docker group takes
    // the best of what is left, each group's claimers in the order they asked: the same
    // hand-out on both stores, in one batch.
    let claims = store
        .claim_batch(&["g1", "d1", "g2", "d2", "d3"])
        .await
        .unwrap();
    let mut handed: Vec<(String, String)> = claims
        .iter()
        .map(|c| (c.assignment.agent_id.clone(), c.task.key.clone()))
        .collect();
    handed.sort();
    let expected = [
        ("d1", "t1"),
        ("d2", "t4"),
        ("d3", "t5"),
        ("g1", "t0"),
        ("g2", "t2"),
    ]
    .map(|(agent, key)| (agent.to_owned(), key.to_owned()));
    assert_eq!(handed, expected);
}

async fn fail(store: &Store, assignment: i64) {
    store
        .update_assignment(assignment, 0, AssignmentStatus::Failed, None, false)
        .await
        .unwrap();
}

async fn backoff_and_retry(db: HubDb) {
    let task = NewTask {
        max_attempts: 3,
        ..NewTask::new("flaky", "e")
    };
    let store = store(&db, &[task]).await.with_retry_backoff(backoff(300));
    store.heartbeat("a", "h", &[]).await.unwrap();
    let mut waits = Vec::new();
    for attempt in 1..=3 {
        let claim = loop {
            if let Some(claim) = store.claim("a").await.unwrap() {
                break claim;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let before = agent_orch_now();
        fail(&store, claim.assignment.id).await;
        let task = store.task(claim.task.id).await.unwrap();
        assert_eq!(task.failures, attempt);
        if attempt < 3 {
            assert_eq!(task.status, TaskStatus::Pending);
            assert!(store.claim("a").await.unwrap().is_none(), "backing off");
            assert!(store.ready_tasks().await.unwrap().is_empty());
            waits.push(task.not_before - before);
        } else {
            assert_eq!(task.status, TaskStatus::Blocked, "max_attempts reached");
        }
    }
    // 300 ms after the first failure, 600 ms after the second (give or take the clock tick).
    assert!((290..=400).contains(&waits[0]), "{waits:?}");
    assert!((590..=700).contains(&waits[1]), "{waits:?}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        store.claim("a").await.unwrap().is_none(),
        "blocked stays blocked"
    );

    let retried = store.retry_task(1).await.unwrap();
    assert_eq!(
        (retried.status, retried.failures, retried.not_before),
        (TaskStatus::Pending, 0, 0)
    );
    let err = store.retry_task(1).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}");
    assert!(
        err.to_string().contains("is `pending`, not blocked"),
        "{err}"
    );
    let claim = store.claim("a").await.unwrap().unwrap();
    assert_eq!(claim.task.key, "flaky");
    assert_eq!(
        store.retry_task(99).await.unwrap_err().kind,
        StoreErrorKind::NotFound
    );
}

fn agent_orch_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn timed(key: &str, timeout_ms: i64, max_attempts: i64) -> NewTask {
    NewTask {
        timeout_ms: Some(timeout_ms),
        max_attempts,
        ..NewTask::new(key, "e")
    }
}

async fn timeout(db: HubDb) {
    // Long enough that a loaded machine does not reach it before the first look.
    let store = store(&db, &[timed("slow", 1_500, 2), NewTask::new("quick", "e")])
        .await
        .with_retry_backoff(backoff(0));
    store.heartbeat("a", "h", &[]).await.unwrap();
    let slow = store.claim("a").await.unwrap().unwrap();
    let quick = store.claim("a").await.unwrap().unwrap();
    assert_eq!(
        (slow.task.key.as_str(), quick.task.key.as_str()),
        ("slow", "quick")
    );
    assert!(store.fail_timed_out().await.unwrap().is_empty(), "not yet");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let ended = store.fail_timed_out().await.unwrap();
    assert_eq!(ended.len(), 1, "only the task with a timeout: {ended:?}");
    assert_eq!(
        (ended[0].id, ended[0].status),
        (slow.assignment.id, AssignmentStatus::Failed)
    );
    assert_eq!(store.timed_out_count().await.unwrap(), 1);
    let task = store.task(slow.task.id).await.unwrap();
    assert_eq!(
        (task.status, task.failures, task.assigned_agent),
        (TaskStatus::Pending, 1, None)
    );
    // The agent reports late, with any ending, even the one the hub gave: refused.
    for status in [AssignmentStatus::Completed, AssignmentStatus::Failed] {
        let err = store
            .update_assignment(slow.assignment.id, 100, status, None, false)
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
    }
    assert_eq!(store.task(slow.task.id).await.unwrap().failures, 1);
    // The requeued task times out again: its second failure blocks it.
    let again = store.claim("a").await.unwrap().unwrap();
    assert_eq!(again.task.id, slow.task.id);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(store.fail_timed_out().await.unwrap().len(), 1);
    let task = store.task(slow.task.id).await.unwrap();
    assert_eq!((task.status, task.failures), (TaskStatus::Blocked, 2));
    // The untimed task was never touched.
    let quick_now = store.assignment(quick.assignment.id).await.unwrap();
    assert_eq!(quick_now.status, AssignmentStatus::Active);
}

async fn timeout_against_late_report(db: HubDb) {
    const ROUNDS: usize = 12;
    let tasks: Vec<NewTask> = (0..ROUNDS).map(|n| timed(&format!("t{n}"), 1, 5)).collect();
    let store = store(&db, &tasks).await.with_retry_backoff(backoff(60_000));
    store.heartbeat("a", "h", &[]).await.unwrap();
    let (mut timeouts_won, mut reports_won) = (0, 0);
    for _ in 0..ROUNDS {
        let claim = store.claim("a").await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let reaper = {
            let store = store.clone();
            tokio::spawn(async move { store.fail_timed_out().await })
        };
        let report = {
            let store = store.clone();
            let id = claim.assignment.id;
            tokio::spawn(async move {
                store
                    .update_assignment(id, 100, AssignmentStatus::Completed, None, false)
                    .await
            })
        };
        let timed_out = reaper.await.unwrap().unwrap();
        let reported = report.await.unwrap();
        let task = store.task(claim.task.id).await.unwrap();
        let assignment = store.assignment(claim.assignment.id).await.unwrap();
        match reported {
            Ok(done) => {
                reports_won += 1;
                assert!(timed_out.is_empty(), "both won: {timed_out:?}");
                assert_eq!(done.status, AssignmentStatus::Completed);
                assert_eq!((task.status, task.failures), (TaskStatus::Done, 0));
            }
            Err(err) => {
                timeouts_won += 1;
                assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}");
                assert!(err.to_string().contains("timed out"), "{err}");
                assert_eq!(timed_out.len(), 1);
                assert_eq!(assignment.status, AssignmentStatus::Failed);
                assert_eq!(
                    (task.status, task.failures, task.assigned_agent),
                    (TaskStatus::Pending, 1, None)
                );
            }
        }
    }
    assert_eq!(timeouts_won + reports_won, ROUNDS);
    assert_eq!(store.timed_out_count().await.unwrap(), timeouts_won as i64);
}

async fn retry_against_claims(db: HubDb) {
    const ROUNDS: usize = 8;
    const CLAIMERS: usize = 6;
    let task = NewTask {
        max_attempts: 1,
        ..NewTask::new("once", "e")
    };
    let store = store(&db, &[task]).await.with_retry_backoff(backoff(0));
    for claimer in 0..CLAIMERS {
        store
            .heartbeat(&format!("c{claimer}"), "h", &[])
            .await
            .unwrap();
    }
    let store = Arc::new(store);
    for round in 0..ROUNDS {
        // Block it: one failed attempt is all it gets.
        let claim = store.claim("c0").await.unwrap().unwrap();
        fail(&store, claim.assignment.id).await;
        assert_eq!(store.task(1).await.unwrap().status, TaskStatus::Blocked);
        let mut racers = Vec::new();
        for claimer in 0..CLAIMERS {
            let store = store.clone();
            racers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..5 {
                    if let Some(claim) = store.claim(&format!("c{claimer}")).await.unwrap() {
                        got.push(claim);
                    }
                }
                got
            }));
        }
        let retries: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.retry_task(1).await })
            })
            .collect();
        let mut retried = 0;
        for retry in retries {
            match retry.await.unwrap() {
                Ok(_) => retried += 1,
                Err(err) => assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}"),
            }
        }
        assert_eq!(
            retried, 1,
            "round {round}: one retry unblocks, the other is refused"
        );
        let mut claims = Vec::new();
        for racer in racers {
            claims.extend(racer.await.unwrap());
        }
        let active = store
            .assignments(None, Some(AssignmentStatus::Active))
            .await
            .unwrap();
        assert!(
            claims.len() <= 1,
            "round {round}: claimed twice: {claims:?}"
        );
        assert!(active.len() <= 1, "round {round}: {active:?}");
        let claim = match claims.pop() {
            Some(claim) => claim,
            None => store.claim("c0").await.unwrap().unwrap(),
        };
        assert_eq!(claim.task.failures, 0, "the retry reset the attempts");
        // Back to the start: give it back so the next round can block it again.
        store
            .update_assignment(
                claim.assignment.id,
                0,
                AssignmentStatus::Released,
                None,
                false,
            )
            .await
            .unwrap();
    }
}

async fn pending_after_review(db: HubDb) {
    let store = store(&db, &[NewTask::new("r", "e")]).await;
    store.heartbeat("a", "h", &[]).await.unwrap();
    let claim = store.claim("a").await.unwrap().unwrap();
    store
        .update_assignment(
            claim.assignment.id,
            100,
            AssignmentStatus::Completed,
            None,
            true,
        )
        .await
        .unwrap();
    let reviewed = store.task(claim.task.id).await.unwrap();
    assert_eq!(
        (reviewed.status, reviewed.assigned_agent.as_deref()),
        (TaskStatus::Review, Some("a"))
    );
    // Review sent it back: the task forgets its agent, so it is ready and claimable again.
    let task = store
        .update_task_progress(claim.task.id, 0, Some(TaskStatus::Pending))
        .await
        .unwrap();
    assert_eq!(
        (task.status, task.assigned_agent),
        (TaskStatus::Pending, None)
    );
    assert_eq!(store.ready_tasks().await.unwrap().len(), 1);
    let again = store.claim("a").await.unwrap().unwrap();
    assert_eq!(again.task.id, claim.task.id);
}

async fn retry_over_http(db: HubDb) {
    let hub = TestHub::start(db).await;
    let task = NewTask {
        max_attempts: 1,
        requires: strings(&["linux"]),
        timeout_ms: Some(1_800_000),
        ..NewTask::new("h", "e")
    };
    hub.hub
        .state
        .store
        .import_plan("http", None, &[task])
        .await
        .unwrap();
    let (status, body) = hub.post("/api/tasks/1/retry", serde_json::json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not blocked"),
        "{body}"
    );
    let (status, _) = hub
        .post(
            "/api/agents/heartbeat",
            serde_json::json!({"id": "w", "capabilities": ["linux"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, claim) = hub
        .post(
            "/api/assignments/claim",
            serde_json::json!({"agent_id": "w"}),
        )
        .await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(claim["task"]["requires"], serde_json::json!(["linux"]));
    assert_eq!(claim["task"]["timeout_ms"], 1_800_000);
    assert_eq!(claim["task"]["max_attempts"], 1);
    let id = claim["assignment"]["id"].as_i64().unwrap();
    let (status, _) = hub
        .patch(
            &format!("/api/assignments/{id}/progress"),
            serde_json::json!({"progress": 10, "status": "failed"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, task) = hub.get("/api/tasks/1").await;
    assert_eq!(task["status"], "blocked");
    let (status, task) = hub.post("/api/tasks/1/retry", serde_json::json!({})).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(
        (task["status"].as_str(), task["failures"].as_i64()),
        (Some("pending"), Some(0))
    );
    let (status, _) = hub.post("/api/tasks/99/retry", serde_json::json!({})).await;
    assert_eq!(status, 404);
    let (_, document) = hub.get("/openapi.json").await;
    assert!(document["paths"]["/api/tasks/{id}/retry"]["post"].is_object());
    let task_schema = &document["components"]["schemas"]["Task"]["properties"];
    for field in ["requires", "timeout_ms", "max_attempts", "not_before"] {
        assert!(task_schema[field].is_object(), "Task lacks {field}");
    }
}
