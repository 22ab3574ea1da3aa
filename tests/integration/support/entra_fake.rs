//! Microsoft Entra ID's token endpoint (`/{tenant}/oauth2/v2.0/token`): the client-credentials
//! grant with a client assertion (workload identity federation) or a client secret (a service
//! principal connection). Only the pipeline's ID token or the known secret, for the right
//! client and tenant, gets a token; anything else gets Entra's error.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde_json::json;

use super::azure_server::{
    AzureState, CLIENT_ID, CLIENT_SECRET, FEDERATED_ACCESS_TOKEN, OIDC_TOKEN, TENANT_ID,
};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub(crate) fn routes() -> Router<Arc<AzureState>> {
    Router::new().route("/{tenant}/oauth2/v2.0/token", post(token))
}

async fn token(Path(tenant): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str);
    let valid = tenant == TENANT_ID
        && field("grant_type") == Some("client_credentials")
        && field("client_id") == Some(CLIENT_ID)
        && field("scope") == Some("https://vault.azure.net/.default")
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
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": FEDERATED_ACCESS_TOKEN,
    }))
    .into_response()
}
