//! Telemetry receivers on 127.0.0.1 that answer as the real ones do, recording every request
//! (path, headers, JSON body):
//!
//! - `POST /v1/traces`: an OpenTelemetry Collector's OTLP/HTTP receiver (opentelemetry.io,
//!   "OTLP Specification", "OTLP/HTTP"). A body that is not `application/json` gets `415`; JSON
//!   that is not an `ExportTraceServiceRequest` gets `400` with a `google.rpc.Status`
//!   (`{"code": 3, "message": ...}`); otherwise `200` with an `ExportTraceServiceResponse`
//!   (`{"partialSuccess": {}}`). Span and trace ids must be 32 and 16 hex digits (the JSON
//!   encoding's rule), or the request is a `400`.
//! - `POST /v2.1/track`: the Application Insights ingestion endpoint (learn.microsoft.com,
//!   "Troubleshoot missing application telemetry"; the SDKs' partial-success handling). The
//!   body is a JSON array of envelopes; each whose `iKey` is not [`INSTRUMENTATION_KEY`] is
//!   refused with `400` `Invalid instrumentation key` in `errors`. The answer is `200` when all
//!   were accepted, `206` when some were, `400` when none were, with
//!   `{"itemsReceived", "itemsAccepted", "errors": [{"index", "statusCode", "message"}]}`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::background_server::BackgroundServer;
use serde_json::{Value, json};

/// The key the fake resource has; any other is refused.
pub(crate) const INSTRUMENTATION_KEY: &str = "5b1f0c4e-7a2d-4e8f-9c3b-1d2e3f4a5b6c";

#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

type Requests = Arc<Mutex<Vec<Received>>>;

pub(crate) struct TelemetryFake {
    pub(crate) addr: SocketAddr,
    requests: Requests,
    _server: BackgroundServer,
}

impl TelemetryFake {
    /// Serves on its own runtime, so tests that run the binary synchronously can use it.
    pub(crate) fn start() -> Self {
        let requests = Requests::default();
        let app = Router::new()
            .route("/v1/traces", post(otlp))
            .route("/v2.1/track", post(track))
            .with_state(Arc::clone(&requests));
        let server = BackgroundServer::start(app);
        Self {
            addr: server.addr,
            requests,
            _server: server,
        }
    }

    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` is set to (the SDKs append `/v1/traces`).
    pub(crate) fn otlp_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An `APPLICATIONINSIGHTS_CONNECTION_STRING` for this fake, with `key`.
    pub(crate) fn connection_string(&self, key: &str) -> String {
        format!(
            "InstrumentationKey={key};IngestionEndpoint=http://{}/;LiveEndpoint=http://{}/",
            self.addr, self.addr
        )
    }

    pub(crate) fn received(&self, path: &str) -> Vec<Received> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|request| request.path == path)
            .cloned()
            .collect()
    }
}

fn record(requests: &Requests, uri: &Uri, headers: &HeaderMap, body: &Value) {
    requests.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body: body.clone(),
    });
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn otlp(
    State(requests): State<Requests>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&requests, &uri, &headers, &body);
    let invalid = |message: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            json!({"code": 3, "message": message}),
        )
    };
    let Some(resource_spans) = body["resourceSpans"].as_array() else {
        return invalid("resourceSpans missing");
    };
    let hex_of = |value: &Value, len: usize| {
        value
            .as_str()
            .is_some_and(|id| id.len() == len && id.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    for span in resource_spans
        .iter()
        .flat_map(|resource| resource["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|scope| scope["spans"].as_array().into_iter().flatten())
    {
        if !hex_of(&span["traceId"], 32) || !hex_of(&span["spanId"], 16) {
            return invalid("invalid traceId or spanId");
        }
    }
    json_response(StatusCode::OK, json!({"partialSuccess": {}}))
}

async fn track(
    State(requests): State<Requests>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&requests, &uri, &headers, &body);
    let items = body.as_array().cloned().unwrap_or_default();
    let errors: Vec<Value> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| item["iKey"] != INSTRUMENTATION_KEY)
        .map(|(index, _)| {
            json!({"index": index, "statusCode": 400, "message": "Invalid instrumentation key"})
        })
        .collect();
    let accepted = items.len() - errors.len();
    let status = match (accepted, errors.len()) {
        (_, 0) => StatusCode::OK,
        (0, _) => StatusCode::BAD_REQUEST,
        _ => StatusCode::PARTIAL_CONTENT,
    };
    json_response(
        status,
        json!({"itemsReceived": items.len(), "itemsAccepted": accepted, "errors": errors}),
    )
}
