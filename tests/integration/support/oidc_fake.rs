//! The Azure DevOps OIDC endpoint (`$SYSTEM_OIDCREQUESTURI`): `POST` with the job's access
//! token as bearer, `api-version=7.1` and the service connection's id; answers
//! `{"oidcToken": ...}` as Azure DevOps does, or 401 for a wrong token.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::azure_server::{AzureState, CONNECTION_ID, OIDC_TOKEN, SYSTEM_ACCESS_TOKEN, bearer};

/// `SYSTEM_OIDCREQUESTURI` for a job; its host is redirected to the fake.
pub(crate) const OIDC_REQUEST_URI: &str =
    "https://dev.azure.com/fleet/_apis/distributedtask/hubs/build/plans/9c1e/jobs/4d2f/oidctoken";

pub(crate) fn routes() -> Router<Arc<AzureState>> {
    Router::new().route(
        "/fleet/_apis/distributedtask/hubs/build/plans/{plan}/jobs/{job}/oidctoken",
        post(oidc_token),
    )
}

async fn oidc_token(Query(query): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    if bearer(&headers) != Some(SYSTEM_ACCESS_TOKEN) {
        return (StatusCode::UNAUTHORIZED, "TF400813: not authorized").into_response();
    }
    let api_version = query.get("api-version").map(String::as_str);
    let connection = query.get("serviceConnectionId").map(String::as_str);
    if api_version != Some("7.1") || connection != Some(CONNECTION_ID) {
        return (
            StatusCode::BAD_REQUEST,
            format!("unexpected query {query:?}"),
        )
            .into_response();
    }
    axum::Json(json!({ "oidcToken": OIDC_TOKEN })).into_response()
}
