//! `/api/agents`: registration by heartbeat, health, deactivation.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::{HubState, validate_agent_id, validate_text};
use crate::hub::events::HubEvent;
use crate::hub::model::{Agent, AgentHealth, HeartbeatAnswer};

pub(crate) async fn list(
    State(state): State<HubState>,
) -> Result<Json<Vec<AgentHealth>>, ApiError> {
    Ok(Json(state.store.agents(state.heartbeat_timeout_ms).await?))
}

pub(crate) async fn get(
    State(state): State<HubState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AgentHealth>, ApiError> {
    Ok(Json(
        state.store.agent(&id, state.heartbeat_timeout_ms).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Heartbeat {
    id: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    capabilities: Vec<String>,
}

pub(crate) async fn heartbeat(
    State(state): State<HubState>,
    ApiJson(beat): ApiJson<Heartbeat>,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    validate_agent_id(&beat.id)?;
    validate_text("host", &beat.host, 255)?;
    if beat.capabilities.len() > 64 {
        return Err(ApiError::bad_request("at most 64 capabilities"));
    }
    for capability in &beat.capabilities {
        validate_text("capability", capability, 64)?;
    }
    let agent = state
        .store
        .heartbeat(&beat.id, &beat.host, &beat.capabilities)
        .await?;
    state.events.publish(&HubEvent::AgentUpdated(agent.clone()));
    let cancel_assignments = state.store.cancels_for(&agent.id).await?;
    Ok(Json(HeartbeatAnswer {
        agent,
        cancel_assignments,
    }))
}

pub(crate) async fn deactivate(
    State(state): State<HubState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Agent>, ApiError> {
    let (agent, requeued) = state.store.deactivate_agent(&id).await?;
    state.events.publish(&HubEvent::AgentUpdated(agent.clone()));
    super::publish_requeued(&state, requeued).await;
    Ok(Json(agent))
}
