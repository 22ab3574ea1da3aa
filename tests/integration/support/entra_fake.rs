//! Microsoft Entra ID's token endpoint (`/{tenant}/oauth2/v2.0/token`): the client-credentials
//! grant with a client assertion (workload identity federation) or a client secret (a service
//! principal connection). Only the pipeline's ID token or the known secret, for the right
//! client and tenant, gets a token; anything else gets Entra's error.
//!
//! Scopes: Key Vault, Resource Manager, Azure Monitor (managed Prometheus, Log Analytics), and
//! the AKS server application
//! (`6dae42f8-4368-4678-94ff-3960e28e3630/.default`, the `--server-id` of AKS kubeconfigs). AKS
//! tokens are JWT-shaped (unsigned) with the `aud` and `exp` claims an AKS API server checks, so
//! the fake cluster can accept only those (see `FakeCluster::require_token_audience`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde_json::json;

use super::azure_server::{
    AKS_SERVER_ID, ARM_ACCESS_TOKEN, AzureState, CLIENT_ID, CLIENT_SECRET, FEDERATED_ACCESS_TOKEN,
    LOG_ANALYTICS_ACCESS_TOKEN, OIDC_TOKEN, PROMETHEUS_ACCESS_TOKEN, TENANT_ID,
};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub(crate) fn routes() -> Router<Arc<AzureState>> {
    Router::new().route("/{tenant}/oauth2/v2.0/token", post(token))
}

async fn token(
    State(state): State<Arc<AzureState>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str);
    let valid = tenant == TENANT_ID
        && field("grant_type") == Some("client_credentials")
        && field("client_id") == Some(CLIENT_ID)
        && ((field("client_assertion_type") == Some(ASSERTION_TYPE)
            && field("client_assertion") == Some(OIDC_TOKEN))
            || field("client_secret") == Some(CLIENT_SECRET));
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": "invalid_client",
                "error_description": "AADSTS700213: No matching federated identity record found.",
            })),
        )
            .into_response();
    }
    let aks_scope = format!("{AKS_SERVER_ID}/.default");
    let (access_token, expires_in) = match field("scope") {
        Some("https://vault.azure.net/.default") => (FEDERATED_ACCESS_TOKEN.to_owned(), 3599),
        Some("https://management.azure.com/.default") => (ARM_ACCESS_TOKEN.to_owned(), 3599),
        Some("https://prometheus.monitor.azure.com/.default") => {
            (PROMETHEUS_ACCESS_TOKEN.to_owned(), 3599)
        }
        Some("https://api.loganalytics.io/.default") => {
            (LOG_ANALYTICS_ACCESS_TOKEN.to_owned(), 3599)
        }
        Some(scope) if scope == aks_scope => {
            let lifetime = state.config.lock().unwrap().aks_token_lifetime_secs;
            let serial = state.aks_tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
            (aks_token(serial, lifetime), lifetime)
        }
        other => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "error": "invalid_scope",
                    "error_description": format!("AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope {} is not valid.", other.unwrap_or_default()),
                })),
            )
                .into_response();
        }
    };
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    }))
    .into_response()
}

/// `header.claims.signature` with the AKS server application as audience, expiring in
/// `lifetime` seconds; `serial` tells tokens apart.
fn aks_token(serial: u32, lifetime: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let part = |value: serde_json::Value| azure_core::base64::encode_url_safe(value.to_string());
    format!(
        "{}.{}.fake-signature",
        part(json!({"alg": "RS256", "typ": "JWT"})),
        part(
            json!({"aud": AKS_SERVER_ID, "iss": format!("https://sts.windows.net/{TENANT_ID}/"), "exp": now + lifetime, "jti": serial})
        ),
    )
}
