//! What the hub tells `/ws` subscribers as it happens: task, assignment, agent, evidence and
//! progress events. Each event is serialized once and shared, so fan-out to many clients costs
//! a reference count per client, not a serialization.

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::model::{Agent, Assignment, Evidence, ProgressSnapshot, Task};

/// One event on the wire: `{"type": "task.updated", "at": 1732260000000, "data": {...}}`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", content = "data")]
#[expect(
    clippy::large_enum_variant,
    reason = "an event lives only from publish to send; boxing every task would cost more"
)]
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

/// How many events may wait to be relayed to other replicas before new ones are dropped.
const RELAY_BACKLOG: usize = 16_384;

#[derive(Clone, Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Utf8Bytes>,
    /// Where events also go when other replicas share the database (see [`super::relay`]).
    relay: Option<mpsc::Sender<Utf8Bytes>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(BACKLOG);
        EventBus {
            sender,
            relay: None,
        }
    }

    /// A bus whose events are also handed to the returned receiver, for other replicas.
    pub fn relayed() -> (Self, mpsc::Receiver<Utf8Bytes>) {
        let (relay, outbound) = mpsc::channel(RELAY_BACKLOG);
        let bus = EventBus {
            relay: Some(relay),
            ..EventBus::new()
        };
        (bus, outbound)
    }

    pub fn publish(&self, event: &HubEvent) {
        // Nobody listening: skip the serialization (the claim path publishes twice per claim).
        if self.sender.receiver_count() == 0 && self.relay.is_none() {
            return;
        }
        let envelope = Envelope {
            event,
            at: super::model::now_ms(),
        };
        if let Ok(text) = serde_json::to_string(&envelope) {
            let text = Utf8Bytes::from(text);
            if let Some(relay) = &self.relay {
                // A relay too far behind drops events rather than hold up the API.
                let _ = relay.try_send(text.clone());
            }
            self.deliver(text);
        }
    }

    /// Hands an already serialized event (another replica's) to this replica's subscribers.
    pub(crate) fn deliver(&self, text: Utf8Bytes) {
        // No subscriber is not an error: events are for whoever listens now.
        let _ = self.sender.send(text);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.sender.subscribe()
    }
}
