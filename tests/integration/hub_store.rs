//! The hub's store against real databases, each behaviour on SQLite and on PostgreSQL.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use agent_orch::hub::model::{AssignmentStatus, EvidenceKind, TaskStatus};
use agent_orch::hub::plan::Plan;
use agent_orch::hub::store::{
    NewEvidence, NewTask, Recorded, RetryBackoff, Store, StoreErrorKind, TaskFilter,
};

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{PgPool, SqlitePool};

use crate::support::hub_db::{HubDb, on_both_stores};
use crate::support::repo;

const HOUR_MS: i64 = 3_600_000;

on_both_stores! {
    seeding_the_fleet_plan_gives_its_totals_and_readiness => seeding_the_fleet_plan;
    concurrent_claims_never_assign_a_task_twice => concurrent_claims;
    one_batch_serves_its_claimers_in_order_and_skips_idle_agents => claim_batch;
    finishing_a_task_makes_its_dependents_ready => readiness_follows_dependencies;
    giving_a_task_back_requeues_it_and_ends_the_assignment => giving_back;
    a_held_task_keeps_its_status_and_never_blocks_a_claim_batch => held_task;
    silent_agents_lose_their_tasks => heartbeat_timeout;
    evidence_and_snapshots_are_kept_per_task_and_project => evidence_and_history;
    evidence_sent_again_with_its_key_is_kept_once => evidence_idempotency;
    a_database_from_the_first_schema_upgrades_and_keeps_its_evidence => upgrade_from_first_schema;
    a_lease_is_held_by_one_replica_until_it_lapses => leases;
}

async fn seeded(db: &HubDb) -> (Store, Plan) {
    let store = Store::connect(&db.url).await.unwrap();
    let plan = Plan::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet-plan.yaml"))
        .unwrap();
    store
        .import_plan(
            &plan.project.name,
            plan.project.repo.as_deref(),
            &plan.tasks(),
        )
        .await
        .unwrap();
    (store, plan)
}

async fn key_of(store: &Store, id: i64) -> String {
    store.task(id).await.unwrap().key
}

async fn seeding_the_fleet_plan(db: HubDb) {
    let (store, plan) = seeded(&db).await;
    let summary = store.progress_summary(None, HOUR_MS).await.unwrap();
    assert_eq!(summary.total_tasks, 27);
    assert_eq!(summary.total_hours, 592.0);
    assert_eq!(summary.done_tasks, 5);
    assert_eq!(summary.done_hours, 40.0);
    assert_eq!(summary.percent, 6.8);
    assert_eq!(summary.epics.len(), 5);
    let zod = summary
        .epics
        .iter()
        .find(|epic| epic.epic == "Epic 4: Zod Schemas")
        .unwrap();
    assert_eq!((zod.done_tasks, zod.percent), (5, 100.0));
    // Only tasks without unfinished dependencies are ready.
    let ready: Vec<String> = store
        .ready_tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(ready, ["E1-01", "E3-01"]);
    assert_eq!(summary.ready_tasks, 2);

    // Re-importing is idempotent and keeps live statuses.
    let first = store
        .tasks(&TaskFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.key == "E1-01")
        .unwrap();
    store.heartbeat("agent-a", "h", &[]).await.unwrap();
    store.assign(first.id, "agent-a").await.unwrap();
    store
        .import_plan(
            &plan.project.name,
            plan.project.repo.as_deref(),
            &plan.tasks(),
        )
        .await
        .unwrap();
    let again = store.task(first.id).await.unwrap();
    assert_eq!(again.status, TaskStatus::InProgress);
    assert_eq!(store.tasks(&TaskFilter::default()).await.unwrap().len(), 27);
    let e1_07 = store
        .tasks(&TaskFilter {
            epic: Some("Epic 1: Backend Repository Layer".into()),
            ..TaskFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.key == "E1-07")
        .unwrap();
    assert_eq!(e1_07.depends_on.len(), 5);

    // A plan naming a task that is not in it changes nothing.
    let broken = [NewTask {
        depends_on: vec!["nope".into()],
        ..NewTask::new("X-1", "x")
    }];
    let err = store.import_plan("Other", None, &broken).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Invalid);
    assert!(err.to_string().contains("unknown task `nope`"), "{err}");
    assert_eq!(store.projects().await.unwrap().len(), 1, "rolled back");
}

async fn concurrent_claims(db: HubDb) {
    const TASKS: usize = 120;
    const AGENTS: usize = 12;
    let store = Arc::new(Store::connect(&db.url).await.unwrap());
    let tasks: Vec<NewTask> = (0..TASKS)
        .map(|n| NewTask::new(format!("T-{n}"), "load"))
        .collect();
    store.import_plan("load", None, &tasks).await.unwrap();
    let mut workers = Vec::new();
    for agent in 0..AGENTS {
        let store = Arc::clone(&store);
        workers.push(tokio::spawn(async move {
            let id = format!("agent-{agent}");
            store.heartbeat(&id, "h", &[]).await.unwrap();
            let mut claimed = Vec::new();
            while let Some(claim) = store.claim(&id).await.unwrap() {
                assert_eq!(claim.task.assigned_agent.as_deref(), Some(id.as_str()));
                assert_eq!(claim.task.status, TaskStatus::InProgress);
                claimed.push(claim.task.id);
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), TASKS, "every task claimed once");
    assert_eq!(distinct.len(), TASKS, "no task claimed twice");
    let active = store
        .assignments(None, Some(AssignmentStatus::Active))
        .await
        .unwrap();
    assert_eq!(active.len(), TASKS);
    assert!(store.ready_tasks().await.unwrap().is_empty());
}

async fn claim_batch(db: HubDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let tasks: Vec<NewTask> = [("low", 1), ("high", 9), ("mid", 5)]
        .into_iter()
        .map(|(key, priority)| NewTask {
            priority,
            ..NewTask::new(key, "batch")
        })
        .collect();
    store.import_plan("batch", None, &tasks).await.unwrap();
    for agent in ["a", "b", "resting"] {
        store.heartbeat(agent, "h", &[]).await.unwrap();
    }
    store.deactivate_agent("resting").await.unwrap();

    // Unknown and deactivated agents get nothing and take nothing from the others; the
    // active ones get the best tasks in the order they asked; `a` asked twice.
    let claims = store
        .claim_batch(&["a", "ghost", "resting", "b", "a"])
        .await
        .unwrap();
    let handed: Vec<(&str, &str)> = claims
        .iter()
        .map(|c| (c.assignment.agent_id.as_str(), c.task.key.as_str()))
        .collect();
    let mut sorted = handed.clone();
    sorted.sort_by_key(|(_, key)| ["high", "mid", "low"].iter().position(|k| k == key));
    assert_eq!(sorted, [("a", "high"), ("b", "mid"), ("a", "low")]);
    for claim in &claims {
        assert_eq!(
            claim.task.assigned_agent.as_deref(),
            Some(claim.assignment.agent_id.as_str())
        );
        assert_eq!(claim.assignment.task_id, claim.task.id);
        let stored = store.assignment(claim.assignment.id).await.unwrap();
        assert_eq!(
            (stored.task_id, stored.status),
            (claim.task.id, AssignmentStatus::Active)
        );
    }

    // Nothing left: a batch hands out nothing and changes nothing.
    assert!(store.claim_batch(&["b", "a"]).await.unwrap().is_empty());
    assert_eq!(store.assignments(None, None).await.unwrap().len(), 3);
}

async fn held_task(db: HubDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let tasks = ["a", "b", "c"].map(|key| NewTask::new(key, "e"));
    store.import_plan("held", None, &tasks).await.unwrap();
    for agent in ["x1", "x2", "x3"] {
        store.heartbeat(agent, "h", &[]).await.unwrap();
    }
    let held = store.claim("x1").await.unwrap().unwrap();
    assert_eq!(held.task.key, "a");

    // A status change on a held task is refused and changes nothing.
    let err = store
        .update_task_progress(held.task.id, 0, Some(TaskStatus::Pending))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("held by agent `x1`"), "{err}");
    let task = store.task(held.task.id).await.unwrap();
    assert_eq!(
        (task.status, task.assigned_agent.as_deref()),
        (TaskStatus::InProgress, Some("x1"))
    );
    // Progress alone, or the status it already has, is fine.
    let task = store
        .update_task_progress(held.task.id, 20, Some(TaskStatus::InProgress))
        .await
        .unwrap();
    assert_eq!((task.status, task.progress), (TaskStatus::InProgress, 20));

    // A hub before the guard let the status go back behind the assignment's back; such a row
    // is not ready, and a batch with it still serves every claimer.
    execute(&db, "UPDATE tasks SET status = 'pending' WHERE key = 'a'").await;
    let ready: Vec<String> = store
        .ready_tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|task| task.key)
        .collect();
    assert_eq!(ready, ["b", "c"]);
    assert_eq!(
        store
            .progress_summary(None, HOUR_MS)
            .await
            .unwrap()
            .ready_tasks,
        2
    );
    let err = store.assign(held.task.id, "x2").await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("held by agent `x1`"), "{err}");
    let claims = store.claim_batch(&["x2", "x3"]).await.unwrap();
    let mut handed: Vec<(&str, &str)> = claims
        .iter()
        .map(|c| (c.assignment.agent_id.as_str(), c.task.key.as_str()))
        .collect();
    handed.sort_unstable();
    assert_eq!(handed, [("x2", "b"), ("x3", "c")]);
    let active = store
        .assignments(None, Some(AssignmentStatus::Active))
        .await
        .unwrap();
    assert_eq!(active.len(), 3, "x1 still holds `a`: {active:?}");
}

/// Runs SQL on the test's database directly, to set up rows the store would not write.
async fn execute(db: &HubDb, sql: &str) {
    if db.url.starts_with("sqlite:") {
        let pool = SqlitePool::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = PgPool::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn readiness_follows_dependencies(db: HubDb) {
    let (store, _) = seeded(&db).await;
    store
        .heartbeat("agent-a", "h", &["backend".into()])
        .await
        .unwrap();
    let claim = store.claim("agent-a").await.unwrap().unwrap();
    // Highest priority first: E1-01 (10) before E3-01 (6).
    assert_eq!(claim.task.key, "E1-01");
    let done = store
        .update_assignment(
            claim.assignment.id,
            100,
            AssignmentStatus::Completed,
            Some("ok"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(done.status, AssignmentStatus::Completed);
    assert_eq!(
        store.task(claim.task.id).await.unwrap().status,
        TaskStatus::Done
    );
    let mut ready: Vec<String> = store
        .ready_tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect();
    ready.sort();
    assert_eq!(
        ready,
        [
            "E1-02", "E1-03", "E1-04", "E1-05", "E1-06", "E2-01", "E3-01"
        ]
    );
    // A claim carries the task's dependencies.
    let next = store.claim("agent-a").await.unwrap().unwrap();
    assert_eq!(
        (next.task.key.as_str(), next.task.depends_on.clone()),
        ("E1-02", vec![claim.task.id])
    );
    // A task whose dependencies are not done cannot be assigned by hand either.
    let e1_07 = store
        .tasks(&TaskFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.key == "E1-07")
        .unwrap();
    let err = store.assign(e1_07.id, "agent-a").await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict);
    assert!(
        err.to_string().contains("a dependency is not done"),
        "{err}"
    );
    let err = store.claim("nobody").await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

async fn giving_back(db: HubDb) {
    let (store, _) = seeded(&db).await;
    // Failed tasks are handed out again at once here; the backoff has its own tests.
    let store = store.with_retry_backoff(RetryBackoff {
        base: std::time::Duration::ZERO,
        cap: std::time::Duration::ZERO,
    });
    store.heartbeat("agent-a", "h", &[]).await.unwrap();
    let claim = store.claim("agent-a").await.unwrap().unwrap();
    let progressed = store
        .update_assignment(
            claim.assignment.id,
            40,
            AssignmentStatus::Active,
            Some("half"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(progressed.progress, 40);
    assert_eq!(store.task(claim.task.id).await.unwrap().progress, 40);
    store
        .update_assignment(
            claim.assignment.id,
            40,
            AssignmentStatus::Failed,
            Some("gate failed"),
            false,
        )
        .await
        .unwrap();
    let task = store.task(claim.task.id).await.unwrap();
    assert_eq!(
        (task.status, task.assigned_agent),
        (TaskStatus::Pending, None)
    );
    // The same ending again (a worker retrying after a lost answer) is answered the same way
    // and changes nothing: the failure is not counted twice.
    let again = store
        .update_assignment(
            claim.assignment.id,
            40,
            AssignmentStatus::Failed,
            Some("gate failed"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(again.status, AssignmentStatus::Failed);
    assert_eq!(
        store.task(claim.task.id).await.unwrap().failures,
        task.failures
    );
    let err = store
        .update_assignment(
            claim.assignment.id,
            100,
            AssignmentStatus::Completed,
            None,
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict);
    // The ended assignment cannot be revived, and the task goes to the next claim.
    let err = store
        .update_assignment(
            claim.assignment.id,
            50,
            AssignmentStatus::Active,
            None,
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict);
    assert!(err.to_string().contains("is `failed`, not active"), "{err}");
    // Tasks that failed less go first: the untried E3-01 before the failed E1-01.
    let untried = store.claim("agent-a").await.unwrap().unwrap();
    assert_eq!(untried.task.key, "E3-01");
    let again = store.claim("agent-a").await.unwrap().unwrap();
    assert_eq!(again.task.id, claim.task.id);
    assert_eq!(again.task.failures, 1);
    assert_ne!(again.assignment.id, claim.assignment.id);
    // Failing E3-01 up to the limit blocks it instead of requeuing it forever.
    let mut attempt = untried;
    for failures in 1..=agent_orch::hub::model::DEFAULT_MAX_ATTEMPTS {
        store
            .update_assignment(
                attempt.assignment.id,
                0,
                AssignmentStatus::Failed,
                None,
                false,
            )
            .await
            .unwrap();
        let task = store.task(attempt.task.id).await.unwrap();
        assert_eq!(task.failures, failures);
        if failures < agent_orch::hub::model::DEFAULT_MAX_ATTEMPTS {
            assert_eq!(task.status, TaskStatus::Pending);
            attempt = store.claim("agent-a").await.unwrap().unwrap();
            assert_eq!(attempt.task.key, "E3-01");
        } else {
            assert_eq!(task.status, TaskStatus::Blocked);
        }
    }
    assert!(
        store.claim("agent-a").await.unwrap().is_none(),
        "a blocked task is not ready"
    );
    let reviewed = store
        .update_assignment(
            again.assignment.id,
            0,
            AssignmentStatus::Completed,
            None,
            true,
        )
        .await
        .unwrap();
    assert_eq!(reviewed.progress, 100);
    assert_eq!(key_of(&store, again.task.id).await, "E1-01");
    assert_eq!(
        store.task(again.task.id).await.unwrap().status,
        TaskStatus::Review
    );
}

async fn heartbeat_timeout(db: HubDb) {
    let (store, _) = seeded(&db).await;
    store.heartbeat("silent", "h", &[]).await.unwrap();
    store.heartbeat("alive", "h", &[]).await.unwrap();
    let lost = store.claim("silent").await.unwrap().unwrap();
    let kept = store.claim("alive").await.unwrap().unwrap();
    // Wide enough that a loaded machine's pause between the fresh heartbeat and the reaper
    // does not make `alive` look silent too (a 40 ms window did, on a busy CI machine).
    const SILENCE_MS: i64 = 400;
    tokio::time::sleep(std::time::Duration::from_millis(SILENCE_MS as u64 + 200)).await;
    store.heartbeat("alive", "h", &[]).await.unwrap();
    let requeued = store.requeue_stale(SILENCE_MS).await.unwrap();
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].task_id, lost.task.id);
    assert_eq!(
        store.task(lost.task.id).await.unwrap().status,
        TaskStatus::Pending
    );
    assert_eq!(
        store.task(kept.task.id).await.unwrap().status,
        TaskStatus::InProgress
    );
    let agents = store.agents(SILENCE_MS).await.unwrap();
    let silent = agents.iter().find(|a| a.agent.id == "silent").unwrap();
    assert!(!silent.healthy);
    assert_eq!(silent.active_assignments, 0);
    // An offline agent cannot claim until it heartbeats again.
    assert_eq!(
        store.claim("silent").await.unwrap_err().kind,
        StoreErrorKind::Conflict
    );
    store.heartbeat("silent", "h", &[]).await.unwrap();
    assert_eq!(
        store.claim("silent").await.unwrap().unwrap().task.id,
        lost.task.id
    );
    // Running the reaper again changes nothing.
    assert!(store.requeue_stale(HOUR_MS).await.unwrap().is_empty());
    let (agent, given_back) = store.deactivate_agent("alive").await.unwrap();
    assert_eq!(agent.status.as_str(), "deactivated");
    assert_eq!(given_back.len(), 1);
    store.heartbeat("alive", "h", &[]).await.unwrap();
    assert_eq!(
        store
            .agent("alive", HOUR_MS)
            .await
            .unwrap()
            .agent
            .status
            .as_str(),
        "deactivated",
        "a heartbeat does not undo an operator's deactivation"
    );
}

async fn evidence_and_history(db: HubDb) {
    let (store, _) = seeded(&db).await;
    let project = store.projects().await.unwrap().remove(0);
    let task = store.ready_tasks().await.unwrap().remove(0);
    store
        .add_evidence(&NewEvidence {
            agent_id: Some("agent-a".into()),
            detail: "first".into(),
            ..NewEvidence::new(task.id, EvidenceKind::Commit, "0123abcd")
        })
        .await
        .unwrap();
    store
        .add_evidence(&NewEvidence::new(
            task.id,
            EvidenceKind::Junit,
            "runs/1/junit.xml",
        ))
        .await
        .unwrap();
    let trail = store.evidence_for(task.id).await.unwrap();
    assert_eq!(
        trail.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EvidenceKind::Commit, EvidenceKind::Junit]
    );
    assert_eq!(
        store.evidence_for(999_999).await.unwrap_err().kind,
        StoreErrorKind::NotFound
    );
    let err = store
        .add_evidence(&NewEvidence::new(999_999, EvidenceKind::Pr, "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Invalid);

    let updated = store
        .update_task_git(
            task.id,
            Some("feature/e1-01"),
            Some("https://example.test/pr/1"),
        )
        .await
        .unwrap();
    assert_eq!(updated.branch.as_deref(), Some("feature/e1-01"));
    store
        .update_task_progress(task.id, 100, Some(TaskStatus::Review))
        .await
        .unwrap();
    let queue = store.merge_queue().await.unwrap();
    assert_eq!(queue.iter().map(|t| t.id).collect::<Vec<_>>(), [task.id]);
    assert_eq!(store.active_branches().await.unwrap().len(), 1);

    let first = store.snapshot(project.id, HOUR_MS).await.unwrap();
    store
        .update_task_progress(task.id, 100, Some(TaskStatus::Done))
        .await
        .unwrap();
    let second = store.snapshot(project.id, HOUR_MS).await.unwrap();
    assert_eq!((first.done_tasks, second.done_tasks), (5, 6));
    assert_eq!(second.done_hours, 40.0 + task.estimate_hours);
    let history = store.progress_history(project.id).await.unwrap();
    assert_eq!(
        history.iter().map(|s| s.id).collect::<Vec<_>>(),
        [first.id, second.id]
    );
    assert_eq!(
        store.snapshot(424_242, HOUR_MS).await.unwrap_err().kind,
        StoreErrorKind::NotFound
    );
}

async fn evidence_idempotency(db: HubDb) {
    let (store, _) = seeded(&db).await;
    let task = store.ready_tasks().await.unwrap().remove(0);
    let report = NewEvidence {
        agent_id: Some("agent-a".into()),
        idempotency_key: Some("assignment-1/commit/abc".into()),
        ..NewEvidence::new(task.id, EvidenceKind::Commit, "abc")
    };

    // Eight retries of one report racing each other: one record, the rest are told of it.
    let store = Arc::new(store);
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (store, report) = (Arc::clone(&store), report.clone());
            tokio::spawn(async move { store.add_evidence(&report).await.unwrap() })
        })
        .collect();
    let mut created = Vec::new();
    let mut repeated = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Recorded::Created(evidence) => created.push(evidence),
            Recorded::Repeated(evidence) => repeated.push(evidence),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(repeated.len(), 7);
    assert!(repeated.iter().all(|evidence| *evidence == created[0]));
    assert_eq!(store.evidence_for(task.id).await.unwrap(), created);

    // The key is per task, and evidence without a key is never merged.
    let other_task = store.ready_tasks().await.unwrap().remove(1);
    let elsewhere = store
        .add_evidence(&NewEvidence {
            task_id: other_task.id,
            ..report.clone()
        })
        .await
        .unwrap();
    assert!(matches!(elsewhere, Recorded::Created(_)), "{elsewhere:?}");
    let unkeyed = NewEvidence {
        idempotency_key: None,
        ..report.clone()
    };
    for _ in 0..2 {
        let recorded = store.add_evidence(&unkeyed).await.unwrap();
        assert!(matches!(recorded, Recorded::Created(_)), "{recorded:?}");
    }
    assert_eq!(store.evidence_for(task.id).await.unwrap().len(), 3);

    // The same key for different evidence is refused, and names the earlier record.
    let err = store
        .add_evidence(&NewEvidence {
            reference: "def".into(),
            ..report
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict);
    assert!(
        err.to_string().contains(&format!(
            "already used for other evidence on task {}",
            task.id
        )),
        "{err}"
    );
    assert_eq!(store.evidence_for(task.id).await.unwrap().len(), 3);
}

/// A database as the first release left it: one commit reported twice, before evidence had
/// keys. Upgrading keeps both rows and then honours keys.
async fn upgrade_from_first_schema(db: HubDb) {
    const FIRST_RELEASE_DATA: &str = "\
        INSERT INTO projects (id, name, created_at) VALUES (1, 'old', 0);
        INSERT INTO tasks (id, project_id, key, epic, title, created_at, updated_at)
            VALUES (1, 1, 'old-1', 'E1', 'old task', 0, 0);
        INSERT INTO evidence (task_id, agent_id, kind, reference, created_at)
            VALUES (1, 'agent-a', 'commit', 'abc', 0), (1, 'agent-a', 'commit', 'abc', 0);";
    if db.url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(&db.url)
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        first_schema("sqlite").await.run(&pool).await.unwrap();
        sqlx::raw_sql(FIRST_RELEASE_DATA)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let pool = PgPool::connect(&db.url).await.unwrap();
        first_schema("postgres").await.run(&pool).await.unwrap();
        sqlx::raw_sql(FIRST_RELEASE_DATA)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    let store = Store::connect(&db.url).await.unwrap();
    let kept = store.evidence_for(1).await.unwrap();
    assert_eq!(
        kept.iter()
            .map(|e| e.reference.as_str())
            .collect::<Vec<_>>(),
        ["abc", "abc"]
    );
    let report = NewEvidence {
        idempotency_key: Some("k".into()),
        ..NewEvidence::new(1, EvidenceKind::Junit, "junit.xml")
    };
    let first = store.add_evidence(&report).await.unwrap();
    assert!(matches!(first, Recorded::Created(_)), "{first:?}");
    let again = store.add_evidence(&report).await.unwrap();
    assert_eq!(again, Recorded::Repeated(first.evidence().clone()));
    assert_eq!(store.evidence_for(1).await.unwrap().len(), 3);
}

/// The migrations `agent-orch` shipped first, read from the repository as sqlx reads them.
async fn first_schema(store: &str) -> Migrator {
    let mut migrator = Migrator::new(repo::path(&format!("migrations/{store}")))
        .await
        .unwrap();
    migrator.migrations = Cow::Owned(migrator.migrations[..1].to_vec());
    migrator
}

async fn leases(db: HubDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let hour = std::time::Duration::from_secs(3600);
    assert!(store.hold_lease("poll", "replica-a", hour).await.unwrap());
    assert!(
        !store.hold_lease("poll", "replica-b", hour).await.unwrap(),
        "refused while another holder's term runs"
    );
    assert!(
        store.hold_lease("poll", "replica-a", hour).await.unwrap(),
        "renewed by its holder"
    );
    assert!(
        store
            .hold_lease("snapshots", "replica-b", hour)
            .await
            .unwrap(),
        "leases are by name"
    );
    // A holder that stops renewing loses the lease once its term is over.
    let short = std::time::Duration::from_millis(30);
    assert!(store.hold_lease("poll", "replica-a", short).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert!(store.hold_lease("poll", "replica-b", hour).await.unwrap());
    assert!(!store.hold_lease("poll", "replica-a", hour).await.unwrap());
}
