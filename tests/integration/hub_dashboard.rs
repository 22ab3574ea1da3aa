//! The dashboard in headless Chromium: the task board puts each task in its column with its
//! agent, progress, dependencies and pull request; the figures show active agents,
//! utilization, velocity and ETA; the burn-up chart draws the snapshots; and all of it follows
//! the hub live over `/ws`, without reloading. Screenshots at laptop and projector size are
//! kept in `target/tmp/hub_dashboard/`. The burn-up's points come from the snapshots the hub
//! records by itself.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use agent_orch::hub::server::{SNAPSHOT_PERIOD, snapshot_projects};
use serde_json::{Value, json};

use crate::support::chromium::Browser;
use crate::support::hub_db::{HubDb, on_both_stores};
use crate::support::hub_server::{EventStream, TestHub};

on_both_stores! {
    the_hub_snapshots_each_project_once_per_period => periodic_snapshots;
}

/// What the test reads off the page.
const PAGE_STATE: &str = "JSON.stringify({\
    status: document.getElementById('status').textContent,\
    columns: Object.fromEntries([...document.querySelectorAll('#board .column')].map(c => \
        [c.dataset.column, [...c.querySelectorAll('.card')].map(card => card.dataset.key)])),\
    counts: Object.fromEntries([...document.querySelectorAll('#board .column')].map(c => \
        [c.dataset.column, c.querySelector('.count').textContent])),\
    cards: Object.fromEntries([...document.querySelectorAll('.card')].map(c => [c.dataset.key, c.textContent])),\
    links: Object.fromEntries([...document.querySelectorAll('.card')].filter(c => c.querySelector('a'))\
        .map(c => [c.dataset.key, c.querySelector('a').href])),\
    activeAgents: document.getElementById('active-agents').textContent,\
    utilization: document.getElementById('utilization-detail').textContent,\
    velocity: document.getElementById('velocity').textContent,\
    eta: document.getElementById('eta').textContent,\
    etaDetail: document.getElementById('eta-detail').textContent,\
    overall: document.getElementById('overall').textContent,\
    agents: [...document.querySelectorAll('tr.agent')].map(r => [...r.cells].map(td => td.textContent)),\
    snapshots: document.querySelectorAll('#chart circle.snapshot').length,\
    doneLine: document.querySelector('#chart path.done')?.getAttribute('d') ?? null,\
    events: [...document.querySelectorAll('li.event')].map(e => e.textContent),\
    marker: window.testMarker ?? null})";

const WAIT: Duration = Duration::from_secs(15);

async fn page_state(browser: &mut Browser) -> Value {
    serde_json::from_str(browser.eval(PAGE_STATE).await.as_str().unwrap()).unwrap()
}

fn column(state: &Value, name: &str) -> BTreeSet<String> {
    state["columns"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no column {name} in {state}"))
        .iter()
        .map(|key| key.as_str().unwrap().to_owned())
        .collect()
}

fn keys(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|key| (*key).to_owned()).collect()
}

/// A JavaScript condition: the column `name` holds exactly `expected` (in any order).
fn column_is(name: &str, expected: &[&str]) -> String {
    let mut sorted: Vec<&str> = expected.to_vec();
    sorted.sort_unstable();
    format!(
        "JSON.stringify([...document.querySelectorAll('.column[data-column=\"{name}\"] .card')]\
         .map(c => c.dataset.key).sort()) === '{}'",
        serde_json::to_string(&sorted).unwrap()
    )
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hub_dashboard")
}

/// Neither the page nor anything on it is wider than the window.
const FITS_WIDTH: &str = "document.documentElement.scrollWidth <= window.innerWidth";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_board_velocity_and_utilization_live() {
    let hub = TestHub::start(HubDb::sqlite()).await;
    let project = hub.import_fleet_plan().await;
    for (agent, host) in [("agent-a", "vm-1"), ("agent-b", "vm-2")] {
        hub.post("/api/agents/heartbeat", json!({"id": agent, "host": host}))
            .await;
    }
    let (status, _) = hub
        .post("/api/progress/snapshot", json!({"project_id": project}))
        .await;
    assert_eq!(status, 201);
    let (_, tasks) = hub.get("/api/tasks").await;
    let id_of = |key: &str| {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|task| task["key"] == key)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };

    let mut browser = Browser::launch().await;
    browser.resize(1366, 768).await;
    browser.navigate(&hub.url("/")).await;
    let loaded = format!(
        "document.getElementById('status').textContent === 'live' && {}",
        column_is("ready", &["E1-01", "E3-01"])
    );
    browser.wait_for(&loaded, PAGE_STATE, WAIT).await;
    // Whatever changes from here must arrive without reloading the page.
    browser.eval("window.testMarker = 'first load'").await;

    let state = page_state(&mut browser).await;
    let zod = keys(&["E4-01", "E4-02", "E4-03", "E4-04", "E4-05"]);
    assert_eq!(column(&state, "done"), zod);
    let (_, ready) = hub.get("/api/tasks/ready/list").await;
    let ready_keys: BTreeSet<String> = ready
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(column(&state, "ready"), ready_keys);
    assert_eq!(column(&state, "waiting").len(), 20);
    assert_eq!(state["counts"]["waiting"], "20");
    for empty in ["in_progress", "review", "blocked"] {
        assert!(column(&state, empty).is_empty(), "{empty}: {state}");
    }
    let e1_07 = state["cards"]["E1-07"].as_str().unwrap();
    assert!(
        e1_07.contains("needs E1-02, E1-03, E1-04, E1-05, E1-06"),
        "{e1_07}"
    );
    assert_eq!(state["activeAgents"], "2");
    assert_eq!(state["utilization"], "0 of 2 healthy agents busy (0%)");
    assert_eq!(state["velocity"], "–");
    assert_eq!(state["eta"], "–");
    assert_eq!(state["etaDetail"], "needs two progress snapshots");
    assert_eq!(state["overall"], "5/27 tasks, 40/592 h (6.8%)");
    assert_eq!(state["snapshots"], 1);

    // A claim moves the task to "in progress" with its agent, and the agent is busy on it.
    let (status, claim) = hub
        .post("/api/assignments/claim", json!({"agent_id": "agent-a"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(claim["task"]["key"], "E1-01");
    let assignment = claim["assignment"]["id"].as_i64().unwrap();
    hub.patch(
        &format!("/api/assignments/{assignment}/progress"),
        json!({"progress": 40}),
    )
    .await;
    let working = format!(
        "{} && document.querySelector('.card[data-key=\"E1-01\"]').textContent.includes('40%')",
        column_is("in_progress", &["E1-01"])
    );
    browser.wait_for(&working, PAGE_STATE, WAIT).await;
    let state = page_state(&mut browser).await;
    let card = state["cards"]["E1-01"].as_str().unwrap();
    assert!(card.contains("agent agent-a"), "{card}");
    assert_eq!(column(&state, "ready"), keys(&["E3-01"]));
    assert_eq!(state["utilization"], "1 of 2 healthy agents busy (50%)");
    let agent_a = state["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row[0] == "agent-a")
        .unwrap();
    assert_eq!(agent_a[3], "E1-01", "{agent_a}");
    assert!(
        state["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("task E1-01 in_progress")),
        "{state}"
    );

    // Finished for review with a pull request; another task is blocked by hand.
    hub.patch(
        &format!("/api/assignments/{assignment}/progress"),
        json!({"progress": 100, "status": "completed", "review": true}),
    )
    .await;
    let pr = "https://github.com/asmortongpt/Fleet/pull/7";
    hub.patch(
        &format!("/api/tasks/{}/git", id_of("E1-01")),
        json!({"branch": "agent-a/e1-01", "pr_url": pr}),
    )
    .await;
    let (status, _) = hub
        .patch(
            &format!("/api/tasks/{}/progress", id_of("E3-01")),
            json!({"progress": 0, "status": "blocked"}),
        )
        .await;
    assert_eq!(status, 200);
    let reviewed = format!(
        "{} && {} && document.querySelector('.card[data-key=\"E1-01\"] a') !== null",
        column_is("review", &["E1-01"]),
        column_is("blocked", &["E3-01"])
    );
    browser.wait_for(&reviewed, PAGE_STATE, WAIT).await;
    let state = page_state(&mut browser).await;
    assert_eq!(state["links"]["E1-01"], pr);
    assert!(column(&state, "ready").is_empty(), "{state}");
    assert!(column(&state, "in_progress").is_empty(), "{state}");

    // Merged: E1-01 is done, which makes the tasks waiting only on it ready.
    hub.patch(
        &format!("/api/tasks/{}/progress", id_of("E1-01")),
        json!({"progress": 100, "status": "done"}),
    )
    .await;
    let (status, _) = hub
        .post("/api/progress/snapshot", json!({"project_id": project}))
        .await;
    assert_eq!(status, 201);
    let merged = format!(
        "{} && document.querySelectorAll('#chart circle.snapshot').length === 2 \
         && document.getElementById('velocity').textContent !== '–'",
        column_is(
            "ready",
            &["E1-02", "E1-03", "E1-04", "E1-05", "E1-06", "E2-01"]
        )
    );
    browser.wait_for(&merged, PAGE_STATE, WAIT).await;
    let state = page_state(&mut browser).await;
    let mut done = zod.clone();
    done.insert("E1-01".to_owned());
    assert_eq!(column(&state, "done"), done);
    assert_eq!(state["overall"], "6/27 tasks, 56/592 h (9.5%)");
    let (_, forecast) = hub.get(&format!("/api/progress/forecast/{project}")).await;
    let shown: f64 = state["velocity"]
        .as_str()
        .unwrap()
        .trim_end_matches('x')
        .replace(',', "")
        .parse()
        .unwrap();
    let velocity = forecast["velocity"].as_f64().unwrap();
    assert!(velocity > 0.0, "{forecast}");
    assert!((shown - velocity).abs() < 0.06, "{shown} vs {forecast}");
    assert_ne!(state["eta"], "–");
    assert!(
        state["etaDetail"].as_str().unwrap().ends_with("536 h left"),
        "{state}"
    );
    assert!(state["doneLine"].as_str().unwrap().starts_with('M'));
    assert_eq!(state["marker"], "first load", "the page reloaded");
    assert_eq!(browser.eval(FITS_WIDTH).await, Value::Bool(true));
    browser.screenshot(&screenshots().join("laptop.png")).await;

    // On a projector with large type: bigger letters, still no sideways scrolling.
    browser.resize(1920, 1080).await;
    browser
        .eval("document.getElementById('large').click()")
        .await;
    let card_font = "parseFloat(getComputedStyle(document.querySelector('.card')).fontSize)";
    browser
        .wait_for(&format!("{card_font} >= 20"), PAGE_STATE, WAIT)
        .await;
    assert_eq!(browser.eval(FITS_WIDTH).await, Value::Bool(true));
    assert_eq!(
        browser.eval("location.search").await,
        "?large=1",
        "large type is kept in the address, so a projector's bookmark opens with it"
    );
    browser
        .screenshot(&screenshots().join("projector.png"))
        .await;
    for name in ["laptop.png", "projector.png"] {
        let png = std::fs::read(screenshots().join(name)).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{name}"
        );
    }
    hub.stop().await;
}

/// The hub's own snapshots (the burn-up's points): one per project per period, even with
/// several replicas ticking, each told to `/ws` subscribers.
async fn periodic_snapshots(db: HubDb) {
    let hub = TestHub::start(db).await;
    let project = hub.import_fleet_plan().await;
    let mut events = EventStream::connect(hub.hub.addr).await;
    let state = &hub.hub.state;

    let first = snapshot_projects(state, SNAPSHOT_PERIOD / 2).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].project_id, project);
    assert_eq!((first[0].done_hours, first[0].total_hours), (40.0, 592.0));
    let event = events.next().await;
    assert_eq!(event["type"], "progress.snapshot");
    assert_eq!(event["data"]["id"], first[0].id);

    // Another replica ticking moments later records nothing: the latest one is too recent.
    let again = snapshot_projects(state, SNAPSHOT_PERIOD / 2).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    // Once the latest is old enough, the next tick records the next point.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = snapshot_projects(state, Duration::from_millis(20))
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    let (_, history) = hub.get(&format!("/api/progress/history/{project}")).await;
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    hub.stop().await;
}
