//! Group commit for claims. Concurrent claims queue here; one task drains the queue and hands
//! every waiting agent a task in one database round trip (one statement on PostgreSQL, one
//! transaction on SQLite). Under load a claim waits for at most the batch in flight and its
//! own, instead of for every claim ahead of it one commit at a time: that is what keeps the
//! tail latency flat with many workers.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, StoreErrorKind};
use crate::hub::model::{AssignmentStatus, Claim};

/// The most claims answered by one round trip; more waiting go in the next batch.
const MAX_BATCH: usize = 256;

/// Claims waiting for a batch. Enough that 64 workers per replica never wait for a slot.
const QUEUE_CAPACITY: usize = 4096;

type Reply = oneshot::Sender<Result<Option<Claim>, StoreError>>;

struct ClaimRequest {
    agent_id: String,
    reply: Reply,
}

/// The sending half, kept by every clone of a [`Store`]; the batching task ends when the last
/// clone is dropped.
#[derive(Clone, Debug)]
pub(super) struct ClaimQueue {
    sender: mpsc::Sender<ClaimRequest>,
}

impl ClaimQueue {
    /// Starts the batching task over `store`, a store of its own that claims directly (holding
    /// a queue itself, it would keep the queue open forever).
    pub(super) fn start(store: Store) -> ClaimQueue {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(drain(store, receiver));
        ClaimQueue { sender }
    }

    /// Waits for this agent's turn in a batch; `None` when nothing was ready for it (or the
    /// agent may not take work, which the caller then explains).
    pub(super) async fn claim(&self, agent_id: &str) -> Result<Option<Claim>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = ClaimRequest {
            agent_id: agent_id.to_owned(),
            reply,
        };
        self.sender.send(request).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::new(StoreErrorKind::Connect, "the hub's store is shutting down")
}

/// Takes whatever has queued up (at least one claim, at most [`MAX_BATCH`]), claims for all of
/// it at once, and answers each claimer; then the next batch, until the store is dropped.
async fn drain(store: Store, mut receiver: mpsc::Receiver<ClaimRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A claimer that gave up while queued (its HTTP client went away) gets nothing, so no
        // task is handed to somebody who will never hear of it.
        batch.retain(|request: &ClaimRequest| !request.reply.is_closed());
        if !batch.is_empty() {
            answer_batch(&store, &mut batch).await;
        }
    }
}

/// Claims for every request of `batch` and answers each, leaving `batch` empty for the next.
async fn answer_batch(store: &Store, batch: &mut Vec<ClaimRequest>) {
    let agents: Vec<&str> = batch
        .iter()
        .map(|request| request.agent_id.as_str())
        .collect();
    let claims = match store.claim_batch(&agents).await {
        Ok(claims) => claims,
        Err(err) => {
            // Everyone in the batch gets the failure; the error itself cannot be cloned.
            let message = err.to_string();
            for request in batch.drain(..) {
                let _ = request
                    .reply
                    .send(Err(StoreError::new(err.kind, message.clone())));
            }
            return;
        }
    };
    let mut by_agent: HashMap<String, Vec<Claim>> = HashMap::new();
    for claim in claims {
        by_agent
            .entry(claim.assignment.agent_id.clone())
            .or_default()
            .push(claim);
    }
    for request in batch.drain(..) {
        let claim = by_agent.get_mut(&request.agent_id).and_then(Vec::pop);
        if let Err(Ok(Some(orphan))) = request.reply.send(Ok(claim)) {
            // The claimer left while its batch ran: give the task back rather than leave it
            // assigned to somebody who does not know.
            let _ = store
                .update_assignment(
                    orphan.assignment.id,
                    0,
                    AssignmentStatus::Released,
                    Some("the claimer went away before it was answered"),
                    false,
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::store::NewTask;

    async fn store_with_one_task() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let store = Store::connect(&url).await.unwrap();
        let task = NewTask::new("T-1", "e");
        store.import_plan("p", None, &[task]).await.unwrap();
        store.heartbeat("agent-a", "", &[]).await.unwrap();
        (store, dir)
    }

    #[tokio::test]
    async fn a_task_claimed_for_somebody_who_left_is_given_back() {
        let (store, _dir) = store_with_one_task().await;
        let (reply, answer) = oneshot::channel();
        drop(answer);
        let request = ClaimRequest {
            agent_id: "agent-a".into(),
            reply,
        };
        answer_batch(&store, &mut vec![request]).await;

        let ended = store.assignments(None, None).await.unwrap();
        assert_eq!(ended.len(), 1, "the claim was made: {ended:?}");
        assert_eq!(ended[0].status, AssignmentStatus::Released);
        let task = store.ready_tasks().await.unwrap();
        assert_eq!(task.len(), 1, "the task is ready again");
        assert_eq!(task[0].failures, 0, "a release is not a failure");
    }

    #[tokio::test]
    async fn a_claimer_that_left_while_queued_gets_nothing() {
        let (store, _dir) = store_with_one_task().await;
        let (sender, receiver) = mpsc::channel(4);
        let (gone, answer) = oneshot::channel();
        drop(answer);
        let (waiting, kept) = oneshot::channel();
        for reply in [gone, waiting] {
            let request = ClaimRequest {
                agent_id: "agent-a".into(),
                reply,
            };
            sender.send(request).await.unwrap();
        }
        drop(sender);
        drain(store.clone(), receiver).await;

        let claim = kept.await.unwrap().unwrap().unwrap();
        let assignments = store.assignments(None, None).await.unwrap();
        assert_eq!(assignments.len(), 1, "one claim made: {assignments:?}");
        assert_eq!(assignments[0].id, claim.assignment.id);
        assert_eq!(assignments[0].status, AssignmentStatus::Active);
    }
}
