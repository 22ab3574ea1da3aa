//! The Log Analytics query API, `POST /v1/workspaces/{workspaceId}/query` with
//! `{"query", "timespan"}` (<https://learn.microsoft.com/rest/api/loganalytics/dataaccess/query/execute>),
//! answering `{"tables": [{"name": "PrimaryResult", "columns": [{"name", "type"}], "rows"}]}`
//! (<https://learn.microsoft.com/azure/azure-monitor/logs/api/response-format>) or an error
//! status with `{"error": {"code", "message", "innererror"}}`
//! (<https://learn.microsoft.com/azure/azure-monitor/logs/api/errors>). Only Entra's token for
//! `https://api.loganalytics.io/.default` and the known workspace get an answer.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::azure_server::{AzureState, LOG_ANALYTICS_ACCESS_TOKEN, WORKSPACE_ID, bearer};
use super::metric_script::MetricAnswer;

pub(crate) fn routes() -> Router<Arc<AzureState>> {
    Router::new().route("/v1/workspaces/{workspace}/query", post(query))
}

async fn query(
    State(state): State<Arc<AzureState>>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    if bearer(&headers) != Some(LOG_ANALYTICS_ACCESS_TOKEN) {
        return error(
            StatusCode::FORBIDDEN,
            "InvalidTokenError",
            "The provided authentication is not valid for this resource",
        );
    }
    if workspace != WORKSPACE_ID {
        return error(
            StatusCode::NOT_FOUND,
            "WorkspaceNotFoundError",
            &format!("Workspace {workspace} not found"),
        );
    }
    let Some(kql) = body.get("query").and_then(|q| q.as_str()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadArgumentError",
            "The request had some invalid properties",
        );
    };
    let script = state.config.lock().unwrap().log_analytics.clone();
    let value_column = json!({"name": "error_rate", "type": "real"});
    let (columns, rows) = match script.answer(kql) {
        MetricAnswer::Value(value) | MetricAnswer::Scalar(value) => {
            (json!([value_column]), json!([[value]]))
        }
        MetricAnswer::Series(series) => (
            json!([{"name": "cloud_RoleName", "type": "string"}, value_column]),
            series
                .iter()
                .map(|(role, value)| json!([role, value]))
                .collect(),
        ),
        MetricAnswer::NoData => (json!([value_column]), json!([])),
        MetricAnswer::Denied => {
            return error(
                StatusCode::FORBIDDEN,
                "InsufficientAccessError",
                "The provided credentials have insufficient access to perform the requested operation",
            );
        }
        MetricAnswer::Garbage => {
            return (
                StatusCode::OK,
                "{\"tables\": [{\"name\": \"PrimaryResult\", ",
            )
                .into_response();
        }
        MetricAnswer::BadQuery => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {
                    "code": "BadArgumentError",
                    "message": "The request had some invalid properties",
                    "innererror": {"code": "SemanticError", "message": "'requestz' could not be resolved"},
                }})),
            )
                .into_response();
        }
    };
    axum::Json(json!({
        "tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}],
    }))
    .into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}
