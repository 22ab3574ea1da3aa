//! `/api/git`: the merge queue, active branches, and evidence per task.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::{HubState, validate_agent_id, validate_text};
use crate::hub::events::HubEvent;
use crate::hub::model::{Evidence, MergeQueueEntry, Task};
use crate::hub::store::{NewEvidence, Recorded};

/// Tasks in review with a pull request, each with its checks (see [`MergeQueueEntry`]).
pub(crate) async fn merge_queue(
    State(state): State<HubState>,
) -> Result<Json<Vec<MergeQueueEntry>>, ApiError> {
    let mut entries = Vec::new();
    for task in state.store.merge_queue().await? {
        let mut checks = state.store.evidence_for(task.id).await?;
        checks.retain(|evidence| evidence.kind.is_check());
        entries.push(MergeQueueEntry { task, checks });
    }
    Ok(Json(entries))
}

pub(crate) async fn branches(State(state): State<HubState>) -> Result<Json<Vec<Task>>, ApiError> {
    Ok(Json(state.store.active_branches().await?))
}

/// `201` with the new record, or `200` with the earlier one when the idempotency key repeats a
/// report already recorded.
pub(crate) async fn record_evidence(
    State(state): State<HubState>,
    ApiJson(evidence): ApiJson<NewEvidence>,
) -> Result<(StatusCode, Json<Evidence>), ApiError> {
    if let Some(agent_id) = &evidence.agent_id {
        validate_agent_id(agent_id)?;
    }
    validate_text("reference", &evidence.reference, 2048)?;
    if evidence.reference.is_empty() {
        return Err(ApiError::bad_request("`reference` must not be empty"));
    }
    validate_text("detail", &evidence.detail, 16 * 1024)?;
    if let Some(key) = &evidence.idempotency_key {
        validate_text("idempotency_key", key, 255)?;
        if key.is_empty() {
            return Err(ApiError::bad_request("`idempotency_key` must not be empty"));
        }
    }
    match state.store.add_evidence(&evidence).await? {
        Recorded::Created(recorded) => {
            state
                .events
                .publish(&HubEvent::EvidenceRecorded(recorded.clone()));
            Ok((StatusCode::CREATED, Json(recorded)))
        }
        // Told once already: no second event.
        Recorded::Repeated(earlier) => Ok((StatusCode::OK, Json(earlier))),
    }
}

pub(crate) async fn evidence(
    State(state): State<HubState>,
    ApiPath(task_id): ApiPath<i64>,
) -> Result<Json<Vec<Evidence>>, ApiError> {
    Ok(Json(state.store.evidence_for(task_id).await?))
}
