//! A Prometheus HTTP API instant query endpoint, `GET /api/v1/query?query=...`, as
//! <https://prometheus.io/docs/prometheus/latest/querying/api/> documents it: the envelope
//! `{"status": "success" | "error", "data": {"resultType", "result"}, "errorType", "error"}`,
//! an instant vector as `[{"metric": {labels}, "value": [<unix time>, "<value>"]}]` and a scalar
//! as `[<unix time>, "<value>"]`, 400 `bad_data` for a query that does not parse.
//!
//! Served on the Azure server's address: plain Prometheus tests reach it directly; Azure
//! Monitor managed Prometheus tests through the transport override, when `require_token`
//! wants Entra's Prometheus token (`https://prometheus.monitor.azure.com/.default`). Azure
//! Monitor answers an identity without "Monitoring Data Reader" with 403.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::azure_server::{AzureState, PROMETHEUS_ACCESS_TOKEN, bearer};
use super::metric_script::MetricAnswer;

/// The evaluation time of every answer: 2026-12-07T20:00:00Z.
const EVALUATED_AT: f64 = 1_796_673_600.0;

pub(crate) fn routes() -> Router<Arc<AzureState>> {
    Router::new().route("/api/v1/query", get(query))
}

async fn query(
    State(state): State<Arc<AzureState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (script, require_token) = {
        let config = state.config.lock().unwrap();
        (config.prometheus.clone(), config.prometheus_requires_token)
    };
    if require_token && bearer(&headers) != Some(PROMETHEUS_ACCESS_TOKEN) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let Some(expression) = params.get("query") else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "query parameter is required",
        );
    };
    let sample = |labels: serde_json::Value, value: f64| json!({"metric": labels, "value": [EVALUATED_AT, value.to_string()]});
    let (result_type, result) = match script.answer(expression) {
        MetricAnswer::Value(value) => ("vector", json!([sample(json!({}), value)])),
        MetricAnswer::Scalar(value) => ("scalar", json!([EVALUATED_AT, value.to_string()])),
        MetricAnswer::Series(series) => (
            "vector",
            series
                .iter()
                .map(|(pod, value)| sample(json!({"pod": pod}), *value))
                .collect(),
        ),
        MetricAnswer::NoData => ("vector", json!([])),
        MetricAnswer::Denied => {
            return (
                StatusCode::FORBIDDEN,
                "Forbidden: the principal does not have access to the Azure Monitor workspace",
            )
                .into_response();
        }
        MetricAnswer::Garbage => {
            return (
                StatusCode::OK,
                [("content-type", "text/html")],
                "<html><body>Sign in to continue</body></html>",
            )
                .into_response();
        }
        MetricAnswer::BadQuery => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                "invalid parameter \"query\": 1:8: parse error: unexpected end of input",
            );
        }
    };
    axum::Json(json!({
        "status": "success",
        "data": {"resultType": result_type, "result": result},
    }))
    .into_response()
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": error_type, "error": message})),
    )
        .into_response()
}
