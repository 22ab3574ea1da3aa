//! `/api/tasks`: listing with filters, one task, the ready list, progress and git updates, and
//! retrying a blocked task.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{HubState, validate_progress};
use crate::hub::events::HubEvent;
use crate::hub::model::{Task, TaskStatus};
use crate::hub::store::TaskFilter;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskQuery {
    status: Option<String>,
    epic: Option<String>,
    project_id: Option<i64>,
}

pub(crate) async fn list(
    State(state): State<HubState>,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> Result<Json<Vec<Task>>, ApiError> {
    let filter = TaskFilter {
        status: query.status.as_deref().map(str::parse).transpose()?,
        epic: query.epic,
        project_id: query.project_id,
    };
    Ok(Json(state.store.tasks(&filter).await?))
}

pub(crate) async fn get(
    State(state): State<HubState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.store.task(id).await?))
}

pub(crate) async fn ready(State(state): State<HubState>) -> Result<Json<Vec<Task>>, ApiError> {
    Ok(Json(state.store.ready_tasks().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProgressUpdate {
    progress: i64,
    status: Option<TaskStatus>,
}

pub(crate) async fn progress(
    State(state): State<HubState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(update): ApiJson<ProgressUpdate>,
) -> Result<Json<Task>, ApiError> {
    validate_progress(update.progress)?;
    let task = state
        .store
        .update_task_progress(id, update.progress, update.status)
        .await?;
    state
        .events
        .publish(&HubEvent::TaskUpdated(Box::new(task.clone())));
    Ok(Json(task))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GitUpdate {
    branch: Option<String>,
    pr_url: Option<String>,
}

pub(crate) async fn git(
    State(state): State<HubState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(update): ApiJson<GitUpdate>,
) -> Result<Json<Task>, ApiError> {
    if update.branch.is_none() && update.pr_url.is_none() {
        return Err(ApiError::bad_request("give `branch`, `pr_url` or both"));
    }
    if let Some(branch) = &update.branch {
        super::validate_text("branch", branch, 255)?;
    }
    if let Some(pr_url) = &update.pr_url {
        super::validate_text("pr_url", pr_url, 2048)?;
    }
    let task = state
        .store
        .update_task_git(id, update.branch.as_deref(), update.pr_url.as_deref())
        .await?;
    state
        .events
        .publish(&HubEvent::TaskUpdated(Box::new(task.clone())));
    Ok(Json(task))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PullRequestEnd {
    merged: bool,
}

/// A worker or an operator reports that the pull request of a task in review ended: merged, the
/// task is `done`; closed unmerged, `blocked` (409 unless the task is in review).
pub(crate) async fn pull_request_ended(
    State(state): State<HubState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(end): ApiJson<PullRequestEnd>,
) -> Result<Json<Task>, ApiError> {
    let task = state.store.end_review(id, end.merged).await?;
    state
        .events
        .publish(&HubEvent::TaskUpdated(Box::new(task.clone())));
    Ok(Json(task))
}

/// Puts a blocked task back in the queue (409 unless it is blocked).
pub(crate) async fn retry(
    State(state): State<HubState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Task>, ApiError> {
    let task = state.store.retry_task(id).await?;
    state
        .events
        .publish(&HubEvent::TaskUpdated(Box::new(task.clone())));
    Ok(Json(task))
}
