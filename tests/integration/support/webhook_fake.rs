//! Notification endpoints on 127.0.0.1 that answer as the real services do, recording every
//! POST (path and JSON body):
//!
//! - `POST /teams`: a Teams workflow webhook, `202 Accepted` with an empty body
//!   (learn.microsoft.com, "Create incoming webhooks with Workflows for Microsoft Teams").
//! - `POST /slack`: a Slack incoming webhook, `200` with the body `ok`; `POST /slack-archived`
//!   answers `410` `channel_is_archived` (docs.slack.dev, "Sending messages using incoming
//!   webhooks", error table).
//! - `POST /hook`: a generic receiver, `200`.
//! - `POST /fail`: `500` with the body `boom`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;

use super::background_server::BackgroundServer;

type Posts = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

pub(crate) struct WebhookFake {
    pub(crate) addr: SocketAddr,
    posts: Posts,
    _server: BackgroundServer,
}

impl WebhookFake {
    /// Serves on its own runtime, so tests that run the binary synchronously can use it.
    pub(crate) fn start() -> Self {
        let posts = Posts::default();
        let app = Router::new()
            .route("/{name}", post(receive))
            .with_state(Arc::clone(&posts));
        let server = BackgroundServer::start(app);
        Self {
            addr: server.addr,
            posts,
            _server: server,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// The bodies posted to `/{name}`, oldest first.
    pub(crate) fn posts_to(&self, name: &str) -> Vec<serde_json::Value> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| path == name)
            .map(|(_, body)| body.clone())
            .collect()
    }

    pub(crate) fn post_count(&self) -> usize {
        self.posts.lock().unwrap().len()
    }
}

async fn receive(
    State(posts): State<Posts>,
    Path(name): Path<String>,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    posts.lock().unwrap().push((name.clone(), json));
    match name.as_str() {
        "teams" => (StatusCode::ACCEPTED, ""),
        "slack" => (StatusCode::OK, "ok"),
        "slack-archived" => (StatusCode::GONE, "channel_is_archived"),
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        _ => (StatusCode::OK, ""),
    }
}
