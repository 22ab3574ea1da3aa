//! The hub's HTTP API: every endpoint of the seed (tasks, agents, assignments, progress, git,
//! `/health`) plus the atomic claim, the forecast, `/openapi.json`, `/metrics`, `/ws` events
//! and the dashboard, behind bearer tokens for writes, a CORS allow-list, security headers and
//! a body size limit.

mod agents;
mod assignments;
mod auth;
mod dashboard;
mod error;
mod extract;
mod git;
mod metrics;
mod openapi;
mod progress;
mod security;
mod tasks;
mod ws;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderValue;
use axum::routing::{get, patch, post};
use axum::{Json, Router, middleware};
use tokio_util::sync::CancellationToken;

pub use auth::{ApiTokens, TOKENS_ENV, TokenError};
pub use openapi::openapi_document;

use self::error::ApiError;
use super::events::{EventBus, HubEvent};
use super::metrics::HubMetrics;
use super::model::{Assignment, Project};
use super::store::Store;

/// Request bodies larger than this are refused with 413: nothing the API takes is bigger.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct HubState {
    pub store: Store,
    pub events: EventBus,
    /// Counters `/metrics` reports; shared by every handler of this replica.
    pub metrics: Arc<HubMetrics>,
    pub tokens: ApiTokens,
    /// An agent silent for longer than this is unhealthy and loses its assignments.
    pub heartbeat_timeout_ms: i64,
    /// Cancelled when the hub shuts down, so open WebSockets close instead of holding it up.
    pub shutdown: CancellationToken,
}

pub fn router(state: HubState, cors_origins: &[HeaderValue]) -> Router {
    let api = Router::new()
        .route("/tasks", get(tasks::list))
        .route("/tasks/ready/list", get(tasks::ready))
        .route("/tasks/{id}", get(tasks::get))
        .route("/tasks/{id}/progress", patch(tasks::progress))
        .route("/tasks/{id}/git", patch(tasks::git))
        .route("/tasks/{id}/retry", post(tasks::retry))
        .route("/tasks/{id}/pull-request", post(tasks::pull_request_ended))
        .route("/agents", get(agents::list))
        .route("/agents/heartbeat", post(agents::heartbeat))
        .route("/agents/{id}", get(agents::get))
        .route("/agents/{id}/deactivate", post(agents::deactivate))
        .route(
            "/assignments",
            get(assignments::list).post(assignments::create),
        )
        .route("/assignments/claim", post(assignments::claim))
        .route("/assignments/{id}/progress", patch(assignments::progress))
        .route("/assignments/{id}/cancel", post(assignments::cancel))
        .route("/progress/summary", get(progress::summary))
        .route("/progress/agents", get(progress::agents))
        .route("/progress/snapshot", post(progress::snapshot))
        .route("/progress/history/{project_id}", get(progress::history))
        .route("/progress/forecast/{project_id}", get(progress::forecast))
        .route("/git/merge-queue", get(git::merge_queue))
        .route("/git/branches", get(git::branches))
        .route("/git/evidence", post(git::record_evidence))
        .route("/git/evidence/{task_id}", get(git::evidence))
        .route("/projects", get(projects))
        .fallback(not_found);
    Router::new()
        .nest("/api", api)
        .route("/health", get(health))
        .route("/metrics", get(metrics::serve))
        .route("/openapi.json", get(openapi::serve))
        .route("/ws", get(ws::upgrade))
        .route("/", get(dashboard::page))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.tokens.clone(),
            auth::require_token_for_writes,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(security::cors(cors_origins))
        .layer(middleware::from_fn(security::security_headers))
        .with_state(state)
}

async fn health(
    State(state): State<HubState>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let store = match state.store.kind() {
        super::store::StoreKind::Sqlite => "sqlite",
        super::store::StoreKind::Postgres => "postgres",
    };
    match state.store.ping().await {
        Ok(()) => (
            axum::http::StatusCode::OK,
            Json(serde_json::json!({"status": "ok", "store": store, "database": "ok"})),
        ),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({"status": "degraded", "store": store, "database": "unreachable"}),
            ),
        ),
    }
}

async fn projects(State(state): State<HubState>) -> Result<Json<Vec<Project>>, ApiError> {
    Ok(Json(state.store.projects().await?))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!("no such endpoint `{}` (see /openapi.json)", uri.path()),
    )
}

/// Counts assignments the hub took back and tells subscribers about them and the tasks that
/// became pending.
pub(crate) async fn publish_requeued(state: &HubState, requeued: Vec<Assignment>) {
    state
        .metrics
        .record_requeues(u64::try_from(requeued.len()).unwrap_or(u64::MAX));
    for assignment in requeued {
        let task_id = assignment.task_id;
        state
            .events
            .publish(&HubEvent::AssignmentUpdated(assignment));
        if let Ok(task) = state.store.task(task_id).await {
            state.events.publish(&HubEvent::TaskUpdated(Box::new(task)));
        }
    }
}

fn validate_progress(progress: i64) -> Result<(), ApiError> {
    if (0..=100).contains(&progress) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "`progress` must be between 0 and 100, got {progress}"
        )))
    }
}

fn validate_agent_id(id: &str) -> Result<(), ApiError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid agent id `{}`: use 1 to 64 letters, digits, `-`, `_` or `.`",
            id.chars().take(80).collect::<String>()
        )))
    }
}

fn validate_text(field: &str, value: &str, max_len: usize) -> Result<(), ApiError> {
    if value.len() > max_len {
        return Err(ApiError::bad_request(format!(
            "`{field}` is longer than {max_len} bytes"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::bad_request(format!(
            "`{field}` contains control characters"
        )));
    }
    Ok(())
}
