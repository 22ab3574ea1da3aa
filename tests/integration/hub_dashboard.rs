//! The dashboard in headless Chromium: epics with progress, agents with health, and live
//! events arriving over the WebSocket as the hub changes.

use std::path::Path;
use std::time::Duration;

use agent_orch::hub::plan::Plan;
use serde_json::json;

use crate::support::chromium::Browser;
use crate::support::hub_db::HubDb;
use crate::support::hub_server::TestHub;

const PAGE_STATE: &str = "JSON.stringify({\
    status: document.getElementById('status').textContent,\
    overall: document.getElementById('overall').textContent,\
    epics: [...document.querySelectorAll('tr.epic')].map(r => r.textContent),\
    agents: [...document.querySelectorAll('tr.agent')].map(r => r.textContent),\
    events: [...document.querySelectorAll('li.event')].map(e => e.textContent)})";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_epics_agents_and_live_events() {
    let hub = TestHub::start(HubDb::sqlite()).await;
    let plan = Plan::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet-plan.yaml"))
        .unwrap();
    hub.hub
        .state
        .store
        .import_plan(&plan.project.name, None, &plan.tasks())
        .await
        .unwrap();
    hub.post(
        "/api/agents/heartbeat",
        json!({"id": "agent-a", "host": "vm-1"}),
    )
    .await;

    let mut browser = Browser::launch().await;
    browser.navigate(&hub.url("/")).await;
    let ready = "document.querySelectorAll('tr.epic').length === 5 \
                 && document.getElementById('status').textContent === 'live'";
    browser
        .wait_for(ready, PAGE_STATE, Duration::from_secs(20))
        .await;
    let state: serde_json::Value =
        serde_json::from_str(browser.eval(PAGE_STATE).await.as_str().unwrap()).unwrap();
    assert_eq!(state["overall"], "5/27 tasks, 40/592 h (6.8%)");
    let zod = state["epics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e.as_str().unwrap().contains("Zod"))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(zod.contains("5/5") && zod.contains("100%"), "{zod}");
    let agents = state["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    assert!(
        agents[0]
            .as_str()
            .unwrap()
            .contains("agent-avm-1activehealthy"),
        "{agents:?}"
    );

    // A claim made now shows up live: the event in the stream, the agent's load in the table.
    let (status, claim) = hub
        .post("/api/assignments/claim", json!({"agent_id": "agent-a"}))
        .await;
    assert_eq!(status, 200);
    let key = claim["task"]["key"].as_str().unwrap().to_owned();
    let live = format!(
        "[...document.querySelectorAll('li.event')].some(e => e.textContent.includes('task {key} in_progress')) \
         && [...document.querySelectorAll('tr.agent td')].map(td => td.textContent)[4] === '1'"
    );
    browser
        .wait_for(&live, PAGE_STATE, Duration::from_secs(10))
        .await;
    let assignment = claim["assignment"]["id"].as_i64().unwrap();
    hub.patch(
        &format!("/api/assignments/{assignment}/progress"),
        json!({"progress": 100, "status": "completed"}),
    )
    .await;
    let done = "document.getElementById('overall').textContent.startsWith('6/27 tasks')";
    browser
        .wait_for(done, PAGE_STATE, Duration::from_secs(10))
        .await;
    hub.stop().await;
}
