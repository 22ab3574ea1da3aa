//! `/api/git`: the merge queue, active branches, and evidence per task.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::{HubState, validate_agent_id, validate_text};
use crate::hub::events::HubEvent;
use crate::hub::model::{Evidence, EvidenceKind, Task};

pub(crate) async fn merge_queue(
    State(state): State<HubState>,
) -> Result<Json<Vec<Task>>, ApiError> {
    Ok(Json(state.store.merge_queue().await?))
}

pub(crate) async fn branches(State(state): State<HubState>) -> Result<Json<Vec<Task>>, ApiError> {
    Ok(Json(state.store.active_branches().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEvidence {
    task_id: i64,
    agent_id: Option<String>,
    kind: EvidenceKind,
    reference: String,
    #[serde(default)]
    detail: String,
}

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
    let recorded = state
        .store
        .add_evidence(
            evidence.task_id,
            evidence.agent_id.as_deref(),
            evidence.kind,
            &evidence.reference,
            &evidence.detail,
        )
        .await?;
    state
        .events
        .publish(&HubEvent::EvidenceRecorded(recorded.clone()));
    Ok((StatusCode::CREATED, Json(recorded)))
}

pub(crate) async fn evidence(
    State(state): State<HubState>,
    ApiPath(task_id): ApiPath<i64>,
) -> Result<Json<Vec<Evidence>>, ApiError> {
    Ok(Json(state.store.evidence_for(task_id).await?))
}
