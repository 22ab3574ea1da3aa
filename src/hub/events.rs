//! What the hub tells `/ws` subscribers as it happens: task, assignment, agent, evidence and
//! progress events. Each event is serialized once and shared, so fan-out to many clients costs
//! a reference count per client, not a serialization.

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use super::model::{Agent, Assignment, Evidence, ProgressSnapshot, Task};

/// One event on the wire: `{"type": "task.updated", "at": 1732260000000, "data": {...}}`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum HubEvent {
    #[serde(rename = "task.updated")]
    TaskUpdated(Task),
    #[serde(rename = "assignment.created")]
    AssignmentCreated(Assignment),
    #[serde(rename = "assignment.updated")]
    AssignmentUpdated(Assignment),
    #[serde(rename = "agent.updated")]
    AgentUpdated(Agent),
    #[serde(rename = "evidence.recorded")]
    EvidenceRecorded(Evidence),
    #[serde(rename = "progress.snapshot")]
    ProgressSnapshot(ProgressSnapshot),
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(flatten)]
    event: &'a HubEvent,
    at: i64,
}

/// How many events a slow subscriber may fall behind before it is told it missed some.
const BACKLOG: usize = 4096;

#[derive(Clone, Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Utf8Bytes>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(BACKLOG);
        EventBus { sender }
    }

    pub fn publish(&self, event: &HubEvent) {
        // Nobody listening: skip the serialization (the claim path publishes twice per claim).
        if self.sender.receiver_count() == 0 {
            return;
        }
        let envelope = Envelope {
            event,
            at: super::model::now_ms(),
        };
        if let Ok(text) = serde_json::to_string(&envelope) {
            // No subscriber is not an error: events are for whoever listens now.
            let _ = self.sender.send(Utf8Bytes::from(text));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.sender.subscribe()
    }
}
