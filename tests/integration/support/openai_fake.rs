//! A local OpenAI-compatible server: scripted replies per route, every request recorded.
//!
//! Serves `POST /v1/chat/completions` (OpenAI and compatible servers) and
//! `POST /openai/deployments/{deployment}/chat/completions?api-version=...` (Azure OpenAI).
//! Each route has its own queue of [`Reply`]s; a request to a route whose queue is empty gets a
//! 400 that names the route, so a test that sends more than it scripted fails loudly.
//!
//! [`OpenAiFake::refuse_response_format`] makes it a provider without structured outputs: a
//! request with `response_format` gets the 400 OpenAI answers for a model that does not support
//! `json_schema` (`invalid_request_error`, `param: "response_format"`, as reported in
//! web-infra-dev/midscene#259 for chatgpt-4o-latest), before any scripted reply is used.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// Which queue a request is served from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    OpenAi,
    Azure(String),
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// A chat completion with this assistant text and usage.
    Completion {
        content: String,
        prompt_tokens: u32,
        completion_tokens: u32,
    },
    /// Any status, headers and body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Waits, then answers.
    Delayed { delay: Duration, reply: Box<Reply> },
}

impl Reply {
    pub(crate) fn text(content: &str) -> Self {
        Self::Completion {
            content: content.to_owned(),
            prompt_tokens: 120,
            completion_tokens: 30,
        }
    }

    pub(crate) fn rate_limited(retry_after_secs: u64) -> Self {
        Self::Raw {
            status: 429,
            headers: vec![("retry-after".to_owned(), retry_after_secs.to_string())],
            body: json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
                .to_string(),
        }
    }

    pub(crate) fn server_error() -> Self {
        Self::Raw {
            status: 500,
            headers: Vec::new(),
            body: "upstream exploded".to_owned(),
        }
    }

    /// A 200 whose body is not a chat completion.
    pub(crate) fn garbage() -> Self {
        Self::Raw {
            status: 200,
            headers: vec![("content-type".to_owned(), "text/html".to_owned())],
            body: "<html>502 bad gateway, try again</html>".to_owned(),
        }
    }

    pub(crate) fn slow(delay: Duration, reply: Reply) -> Self {
        Self::Delayed {
            delay,
            reply: Box::new(reply),
        }
    }
}

/// A request as the fake received it.
#[derive(Clone, Debug)]
pub(crate) struct ReceivedRequest {
    pub(crate) route: Route,
    pub(crate) query: Option<String>,
    /// Header names in lower case.
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Value,
    pub(crate) raw_body: String,
    pub(crate) at: Instant,
}

impl ReceivedRequest {
    /// The text of the message with this role (`system`, `user`).
    pub(crate) fn message(&self, role: &str) -> String {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Default)]
struct FakeState {
    queues: HashMap<Route, VecDeque<Reply>>,
    requests: Vec<ReceivedRequest>,
    refuse_response_format: bool,
}

type Shared = Arc<Mutex<FakeState>>;

pub(crate) struct OpenAiFake {
    addr: SocketAddr,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl OpenAiFake {
    pub(crate) async fn start() -> Self {
        let state = Shared::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(azure),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake's port");
        let addr = listener.local_addr().expect("the fake's address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// The OpenAI API base (`http://127.0.0.1:<port>/v1`).
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Azure OpenAI resource endpoint (`http://127.0.0.1:<port>`).
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn push(&self, route: Route, reply: Reply) -> &Self {
        self.state
            .lock()
            .expect("fake state")
            .queues
            .entry(route)
            .or_default()
            .push_back(reply);
        self
    }

    /// From now on, answers every request that carries `response_format` with a 400.
    pub(crate) fn refuse_response_format(&self) -> &Self {
        self.state
            .lock()
            .expect("fake state")
            .refuse_response_format = true;
        self
    }

    pub(crate) fn requests(&self) -> Vec<ReceivedRequest> {
        self.state.lock().expect("fake state").requests.clone()
    }

    /// Stops accepting connections; later requests are refused.
    pub(crate) async fn stop(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for OpenAiFake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn openai(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(state, Route::OpenAi, query, headers, body).await
}

async fn azure(
    State(state): State<Shared>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(state, Route::Azure(deployment), query, headers, body).await
}

async fn serve(
    state: Shared,
    route: Route,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let parsed: Value = serde_json::from_str(&raw_body).unwrap_or(Value::Null);
    let model = parsed["model"].as_str().unwrap_or("unknown").to_owned();
    let reply = {
        let mut state = state.lock().expect("fake state");
        state.requests.push(ReceivedRequest {
            route: route.clone(),
            query,
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: parsed.clone(),
            raw_body,
            at: Instant::now(),
        });
        if state.refuse_response_format && parsed.get("response_format").is_some() {
            let message = "Invalid parameter: 'response_format' of type 'json_schema' is not \
                           supported with this model. Learn more about supported models at the \
                           Structured Outputs guide: \
                           https://platform.openai.com/docs/guides/structured-outputs";
            let body = json!({"error": {
                "message": message,
                "type": "invalid_request_error",
                "param": "response_format",
                "code": null
            }});
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response();
        }
        state.queues.get_mut(&route).and_then(VecDeque::pop_front)
    };
    let Some(mut reply) = reply else {
        let message = format!("fake: no scripted reply left for {route:?}");
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": message}}).to_string(),
        )
            .into_response();
    };
    while let Reply::Delayed {
        delay,
        reply: inner,
    } = reply
    {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    match reply {
        Reply::Completion {
            content,
            prompt_tokens,
            completion_tokens,
        } => (
            [("content-type", "application/json")],
            json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop"
                }],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens
                }
            })
            .to_string(),
        )
            .into_response(),
        Reply::Raw {
            status,
            headers,
            body,
        } => {
            let mut response =
                (StatusCode::from_u16(status).expect("a valid status"), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                    value.parse().expect("header value"),
                );
            }
            response
        }
        Reply::Delayed { .. } => unreachable!("unwrapped above"),
    }
}
