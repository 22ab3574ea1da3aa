//! `GET /metrics`: the hub's Prometheus metrics in the text exposition format. Open like every
//! read, so a scraper needs no token.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::HubState;
use super::error::ApiError;
use crate::hub::metrics::QueueGauges;
use crate::hub::model::TaskStatus;

/// The content type Prometheus asks for and expects back for the text format.
const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn serve(State(state): State<HubState>) -> Result<impl IntoResponse, ApiError> {
    let summary = state
        .store
        .progress_summary(None, state.heartbeat_timeout_ms)
        .await?;
    let agents = state.store.agents(state.heartbeat_timeout_ms).await?;
    let healthy = agents.iter().filter(|agent| agent.healthy).count();
    let queue = QueueGauges {
        tasks: vec![
            (TaskStatus::Pending, summary.pending_tasks),
            (TaskStatus::InProgress, summary.in_progress_tasks),
            (TaskStatus::Review, summary.review_tasks),
            (TaskStatus::Done, summary.done_tasks),
            (TaskStatus::Blocked, summary.blocked_tasks),
        ],
        ready_tasks: summary.ready_tasks,
        healthy_agents: i64::try_from(healthy).unwrap_or(i64::MAX),
        unhealthy_agents: i64::try_from(agents.len() - healthy).unwrap_or(i64::MAX),
    };
    Ok((
        [(header::CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)],
        state.metrics.render(&queue),
    ))
}
