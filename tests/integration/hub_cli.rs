//! `agent-orch hub seed` and `agent-orch hub serve` as a user runs them: the real binary,
//! exit codes, what it prints, and a graceful stop on SIGTERM.

use std::time::Duration;

use crate::support::hub_db::{HubDb, on_both_stores};
use crate::support::hub_process::{HubProcess, run_agent_orch as run};

on_both_stores! {
    seeding_the_fleet_plan_then_serving_it => seed_then_serve;
}

async fn seed_then_serve(db: HubDb) {
    let plan = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet-plan.yaml");
    let (code, stdout, stderr) = run(&["hub", "seed", plan, "--database", &db.url], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.trim(),
        "seeded project `Fleet` (id 1): 27 tasks in 5 epics, 592 hours, 3 agents"
    );
    // Seeding again is idempotent.
    let (code, _, stderr) = run(&["hub", "seed", plan, "--database", &db.url], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");

    let mut hub = HubProcess::start(&db.url).await;
    let summary = hub.get_json("/api/progress/summary").await;
    assert_eq!(
        (
            summary["total_tasks"].as_i64(),
            summary["total_hours"].as_f64()
        ),
        (Some(27), Some(592.0))
    );
    let agents = hub.get_json("/api/agents").await;
    assert_eq!(agents.as_array().unwrap().len(), 3);

    // SIGTERM: a graceful stop with exit code 0.
    hub.signal(nix::sys::signal::Signal::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(10), hub.child.wait())
        .await
        .expect("the hub stops within 10 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn bad_plans_and_missing_tokens_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("hub.db").display());
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "project: {name: p}\nepics:\n  - name: e\n    tasks:\n      - {key: a, title: A, hours: 1, depends_on: [zz]}\n",
    )
    .unwrap();
    let (code, _, stderr) = run(
        &[
            "hub",
            "seed",
            plan.to_str().unwrap(),
            "--database",
            &database,
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("task `a` depends on unknown task `zz`"),
        "{stderr}"
    );

    let (code, _, stderr) = run(
        &[
            "hub",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &database,
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no API tokens: set AGENT_ORCH_HUB_TOKENS"),
        "{stderr}"
    );
    let (code, _, stderr) = run(
        &[
            "hub",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &database,
        ],
        &[("AGENT_ORCH_HUB_TOKENS", "s3cr3t")],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("shorter than 16 characters"), "{stderr}");
    assert!(
        !stderr.contains("s3cr3t"),
        "the token itself is never printed: {stderr}"
    );

    let fleet = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet-plan.yaml");
    let (code, _, stderr) = run(
        &["hub", "seed", fleet, "--database", "mysql://u:pw@x/db"],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unsupported database URL `mysql://u:***@x/db`"),
        "{stderr}"
    );
}

/// `hub health` is the container health check: 0 with the hub's JSON while it serves, 1 with
/// the reason once it is gone.
#[tokio::test]
async fn hub_health_answers_for_a_running_hub_and_fails_for_a_stopped_one() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("hub.db").display());
    let hub = HubProcess::start(&database).await;
    let url = format!("{}/health", hub.base);

    let (code, stdout, stderr) = run(&["hub", "health", "--url", &url], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let health: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(health["status"], "ok", "{stdout}");
    assert_eq!(health["database"], "ok", "{stdout}");

    hub.kill9().await;
    let (code, _, stderr) = run(&["hub", "health", "--url", &url, "--timeout", "2s"], &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("the hub at {url} is not healthy")),
        "{stderr}"
    );
}
