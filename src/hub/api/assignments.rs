//! `/api/assignments`: listing, manual assignment, the atomic claim, progress, give-back and
//! cancel.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{HubState, validate_agent_id, validate_progress, validate_text};
use crate::hub::events::HubEvent;
use crate::hub::metrics::ClaimOutcome;
use crate::hub::model::{Assignment, AssignmentStatus, Claim};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignmentQuery {
    agent_id: Option<String>,
    status: Option<String>,
}

pub(crate) async fn list(
    State(state): State<HubState>,
    ApiQuery(query): ApiQuery<AssignmentQuery>,
) -> Result<Json<Vec<Assignment>>, ApiError> {
    let status = query.status.as_deref().map(str::parse).transpose()?;
    Ok(Json(
        state
            .store
            .assignments(query.agent_id.as_deref(), status)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAssignment {
    task_id: i64,
    agent_id: String,
}

pub(crate) async fn create(
    State(state): State<HubState>,
    ApiJson(request): ApiJson<NewAssignment>,
) -> Result<(StatusCode, Json<Claim>), ApiError> {
    validate_agent_id(&request.agent_id)?;
    let claim = state
        .store
        .assign(request.task_id, &request.agent_id)
        .await?;
    publish_claim(&state, &claim);
    Ok((StatusCode::CREATED, Json(claim)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimRequest {
    agent_id: String,
}

/// 200 with the claimed task, or 204 when nothing is ready.
pub(crate) async fn claim(
    State(state): State<HubState>,
    ApiJson(request): ApiJson<ClaimRequest>,
) -> Result<Response, ApiError> {
    validate_agent_id(&request.agent_id)?;
    let started = Instant::now();
    let claimed = state.store.claim(&request.agent_id).await;
    let outcome = match &claimed {
        Ok(Some(_)) => ClaimOutcome::Claimed,
        Ok(None) => ClaimOutcome::Empty,
        Err(_) => ClaimOutcome::Error,
    };
    state.metrics.record_claim(outcome, started.elapsed());
    match claimed? {
        Some(claim) => {
            publish_claim(&state, &claim);
            Ok(Json(claim).into_response())
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

fn publish_claim(state: &HubState, claim: &Claim) {
    state
        .events
        .publish(&HubEvent::AssignmentCreated(claim.assignment.clone()));
    state
        .events
        .publish(&HubEvent::TaskUpdated(Box::new(claim.task.clone())));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProgressUpdate {
    progress: i64,
    #[serde(default = "still_active")]
    status: AssignmentStatus,
    note: Option<String>,
    /// With `completed`: the task goes to review instead of done.
    #[serde(default)]
    review: bool,
}

fn still_active() -> AssignmentStatus {
    AssignmentStatus::Active
}

pub(crate) async fn progress(
    State(state): State<HubState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(update): ApiJson<ProgressUpdate>,
) -> Result<Json<Assignment>, ApiError> {
    validate_progress(update.progress)?;
    if update.status == AssignmentStatus::Requeued {
        return Err(ApiError::bad_request(
            "`requeued` is set by the hub; give a task back with `released` or `failed`",
        ));
    }
    if let Some(note) = &update.note {
        validate_text("note", note, 4096)?;
    }
    let assignment = state
        .store
        .update_assignment(
            id,
            update.progress,
            update.status,
            update.note.as_deref(),
            update.review,
        )
        .await?;
    state
        .events
        .publish(&HubEvent::AssignmentUpdated(assignment.clone()));
    if let Ok(task) = state.store.task(assignment.task_id).await {
        state.events.publish(&HubEvent::TaskUpdated(Box::new(task)));
    }
    Ok(Json(assignment))
}

/// 202: the worker hears it in its next heartbeat or progress answer and reports `cancelled`.
pub(crate) async fn cancel(
    State(state): State<HubState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<Assignment>), ApiError> {
    let assignment = state.store.request_cancel(id).await?;
    state
        .events
        .publish(&HubEvent::AssignmentUpdated(assignment.clone()));
    Ok((StatusCode::ACCEPTED, Json(assignment)))
}
