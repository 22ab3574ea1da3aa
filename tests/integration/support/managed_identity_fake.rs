//! The App Service managed identity endpoint (`$IDENTITY_ENDPOINT`, API 2019-08-01): a `GET`
//! with the `X-IDENTITY-HEADER` secret and the resource, answering a token whose `expires_on`
//! is a string of Unix seconds, as the real endpoint does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::azure_server::{AzureState, IDENTITY_HEADER, MANAGED_IDENTITY_ACCESS_TOKEN};

/// The path of `IDENTITY_ENDPOINT`.
pub(crate) const PATH: &str = "/msi/token";

pub(crate) fn routes() -> Router<Arc<AzureState>> {
    Router::new().route(PATH, get(token))
}

async fn token(Query(query): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    let header = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if header != Some(IDENTITY_HEADER) {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-IDENTITY-HEADER",
        )
            .into_response();
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01")
        || query.get("resource").map(String::as_str) != Some("https://vault.azure.net")
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("unexpected query {query:?}"),
        )
            .into_response();
    }
    let expires_on = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    axum::Json(json!({
        "access_token": MANAGED_IDENTITY_ACCESS_TOKEN,
        "expires_on": expires_on.to_string(),
        "resource": "https://vault.azure.net",
        "token_type": "Bearer",
    }))
    .into_response()
}
