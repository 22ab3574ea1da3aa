//! Azure Key Vault's `GET /secrets/{name}/{version}`, as the service behaves: a request without
//! a bearer token gets 401 with the challenge naming the tenant and resource, a token it did not
//! issue gets 401 too, an unknown secret 404 `SecretNotFound`, and a denied identity 403.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::azure_server::{
    AzureState, CLI_ACCESS_TOKEN, FEDERATED_ACCESS_TOKEN, MANAGED_IDENTITY_ACCESS_TOKEN, TENANT_ID,
    bearer,
};

pub(crate) fn routes() -> Router<Arc<AzureState>> {
    Router::new()
        .route("/secrets/{name}", get(latest))
        .route("/secrets/{name}/", get(latest))
        .route("/secrets/{name}/{version}", get(versioned))
}

async fn latest(
    State(state): State<Arc<AzureState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    secret(&state, &name, &headers)
}

async fn versioned(
    State(state): State<Arc<AzureState>>,
    Path((name, _version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    secret(&state, &name, &headers)
}

fn secret(state: &AzureState, name: &str, headers: &HeaderMap) -> Response {
    let token = bearer(headers);
    if !matches!(
        token,
        Some(FEDERATED_ACCESS_TOKEN | MANAGED_IDENTITY_ACCESS_TOKEN | CLI_ACCESS_TOKEN)
    ) {
        let challenge = format!(
            r#"Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", resource="https://vault.azure.net""#
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            axum::Json(json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}})),
        )
            .into_response();
    }
    let config = state.config.lock().unwrap().clone();
    if config.deny {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": {
                "code": "Forbidden",
                "message": format!("The user, group or application 'appid={}' does not have secrets get permission on key vault 'fleet-kv'.", super::azure_server::CLIENT_ID),
                "innererror": {"code": "AccessDenied"},
            }})),
        )
            .into_response();
    }
    match config.secrets.get(name) {
        Some(value) => axum::Json(json!({
            "value": value,
            "id": format!("https://fleet-kv.vault.azure.net/secrets/{name}/4387e9f3d6e14c459867679a90fd0f79"),
            "attributes": {"enabled": true, "created": 1_700_000_000, "updated": 1_700_000_000, "recoveryLevel": "Recoverable+Purgeable"},
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {
                "code": "SecretNotFound",
                "message": format!("A secret with (name/id) {name} was not found in this key vault."),
            }})),
        )
            .into_response(),
    }
}
