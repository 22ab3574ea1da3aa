//! `/api/progress`: the summary (with epics), agent utilization, snapshots, history and the
//! forecast (velocity and ETA).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::HubState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::hub::events::HubEvent;
use crate::hub::forecast::Forecast;
use crate::hub::model::{AgentHealth, ProgressSnapshot, ProgressSummary, now_ms};
use crate::hub::store::StoreError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SummaryQuery {
    project_id: Option<i64>,
}

pub(crate) async fn summary(
    State(state): State<HubState>,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> Result<Json<ProgressSummary>, ApiError> {
    Ok(Json(
        state
            .store
            .progress_summary(query.project_id, state.heartbeat_timeout_ms)
            .await?,
    ))
}

/// The seed's utilization view: every agent with its load and health.
pub(crate) async fn agents(
    State(state): State<HubState>,
) -> Result<Json<Vec<AgentHealth>>, ApiError> {
    Ok(Json(state.store.agents(state.heartbeat_timeout_ms).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotRequest {
    project_id: i64,
}

pub(crate) async fn snapshot(
    State(state): State<HubState>,
    ApiJson(request): ApiJson<SnapshotRequest>,
) -> Result<(StatusCode, Json<ProgressSnapshot>), ApiError> {
    let snapshot = state
        .store
        .snapshot(request.project_id, state.heartbeat_timeout_ms)
        .await?;
    state
        .events
        .publish(&HubEvent::ProgressSnapshot(snapshot.clone()));
    Ok((StatusCode::CREATED, Json(snapshot)))
}

pub(crate) async fn history(
    State(state): State<HubState>,
    ApiPath(project_id): ApiPath<i64>,
) -> Result<Json<Vec<ProgressSnapshot>>, ApiError> {
    Ok(Json(state.store.progress_history(project_id).await?))
}

/// Velocity over the project's recent snapshots and the ETA of what remains at that pace.
pub(crate) async fn forecast(
    State(state): State<HubState>,
    ApiPath(project_id): ApiPath<i64>,
) -> Result<Json<Forecast>, ApiError> {
    let summary = state
        .store
        .progress_summary(Some(project_id), state.heartbeat_timeout_ms)
        .await?;
    if summary.total_tasks == 0
        && !state
            .store
            .projects()
            .await?
            .iter()
            .any(|project| project.id == project_id)
    {
        return Err(StoreError::not_found(format!("project {project_id}")).into());
    }
    let history = state.store.progress_history(project_id).await?;
    Ok(Json(Forecast::new(
        project_id,
        &history,
        &summary,
        now_ms(),
    )))
}
