//! A scripted HTTP service on 127.0.0.1 for verify tests: flaky, slow, JSON, redirecting and
//! login-protected endpoints, with every request recorded.
//!
//! Routes:
//! - `/flaky`: 503 `{"status":"degraded"}` for the first `fail_first` requests, then 200 `{"status":"ok"}`
//! - `/status/{code}`: that status, body `status {code}`
//! - `/slow/{ms}`: waits, then 200 `slow ok`
//! - `/json`: 200 `{"status":"ok","checks":[{"ok":true}],"version":"1.2.3","count":3}`
//! - `/redirect`: 302 to `/json`
//! - `/ready`: 200 `{"ready":false}` for the first `ready_after` requests, then `{"ready":true}`
//! - `/broken`: 200 `{"ready":false,"error":"database unreachable"}`
//! - `/echo`: 200 with the request's method, headers and body as JSON
//! - `POST /login`: `{"user","password"}` -> 200 `{"token": TOKEN, "user": ...}`, else 403
//! - `/dashboard`: needs `Authorization: Bearer TOKEN`, else 401; 200 `{"user":"alice","plan":"pro"}`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;

pub(crate) const TOKEN: &str = "tok-9f8e7d6c5b4a";
pub(crate) const PASSWORD: &str = "s3cret-pass";

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Script {
    /// `/flaky` fails this many times before answering 200.
    pub(crate) fail_first: u32,
    /// `/ready` says not ready this many times.
    pub(crate) ready_after: u32,
}

#[derive(Default)]
struct Shared {
    script: Script,
    flaky_calls: AtomicU32,
    ready_calls: AtomicU32,
    hits: Mutex<Vec<(String, Instant)>>,
}

pub(crate) struct HttpService {
    pub(crate) addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl HttpService {
    pub(crate) async fn start(script: Script) -> Self {
        let shared = Arc::new(Shared {
            script,
            ..Shared::default()
        });
        let app = Router::new()
            .route("/flaky", get(flaky))
            .route("/status/{code}", any(status))
            .route("/slow/{ms}", get(slow))
            .route("/json", get(json_doc))
            .route("/redirect", get(redirect))
            .route("/ready", get(ready))
            .route("/broken", get(broken))
            .route("/echo", any(echo))
            .route("/login", post(login))
            .route("/dashboard", get(dashboard))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self {
            addr,
            shared,
            server,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Paths requested so far, in order.
    pub(crate) fn hits(&self) -> Vec<String> {
        self.shared
            .hits
            .lock()
            .expect("hits lock")
            .iter()
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// Time between consecutive requests.
    pub(crate) fn gaps(&self) -> Vec<Duration> {
        let hits = self.shared.hits.lock().expect("hits lock");
        hits.windows(2).map(|w| w[1].1 - w[0].1).collect()
    }
}

impl Drop for HttpService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    shared
        .hits
        .lock()
        .expect("hits lock")
        .push((request.uri().path().to_owned(), Instant::now()));
    next.run(request).await
}

async fn flaky(State(shared): State<Arc<Shared>>) -> Response {
    let call = shared.flaky_calls.fetch_add(1, Ordering::SeqCst);
    if call < shared.script.fail_first {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "degraded"})),
        )
            .into_response()
    } else {
        axum::Json(json!({"status": "ok"})).into_response()
    }
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).expect("valid status in test url");
    (status, format!("status {code}")).into_response()
}

async fn slow(Path(ms): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slow ok"
}

async fn json_doc() -> Response {
    axum::Json(json!({"status": "ok", "checks": [{"ok": true}], "version": "1.2.3", "count": 3}))
        .into_response()
}

async fn redirect() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "/json")]).into_response()
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    let call = shared.ready_calls.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"ready": call >= shared.script.ready_after})).into_response()
}

async fn broken() -> Response {
    axum::Json(json!({"ready": false, "error": "database unreachable"})).into_response()
}

async fn echo(method: Method, headers: HeaderMap, body: String) -> Response {
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                json!(value.to_str().unwrap_or_default()),
            )
        })
        .collect();
    axum::Json(json!({"method": method.as_str(), "headers": headers, "body": body})).into_response()
}

async fn login(axum::Json(credentials): axum::Json<serde_json::Value>) -> Response {
    if credentials["password"] == PASSWORD {
        axum::Json(json!({"token": TOKEN, "user": credentials["user"]})).into_response()
    } else {
        (StatusCode::FORBIDDEN, "bad credentials").into_response()
    }
}

async fn dashboard(headers: HeaderMap) -> Response {
    let expected = format!("Bearer {TOKEN}");
    match headers.get(header::AUTHORIZATION) {
        Some(value) if value.as_bytes() == expected.as_bytes() => {
            axum::Json(json!({"user": "alice", "plan": "pro"})).into_response()
        }
        _ => (StatusCode::UNAUTHORIZED, "missing or wrong token").into_response(),
    }
}
