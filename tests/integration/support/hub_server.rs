//! A hub served in-process on 127.0.0.1 (a free port) over a fresh database, and a real HTTP
//! client that carries the test token.

use std::time::Duration;

use agent_orch::hub::api::ApiTokens;
use agent_orch::hub::pull_requests::PullRequestPolling;
use agent_orch::hub::server::{self, RunningHub, ServeOptions};
use agent_orch::hub::store::RetryBackoff;

use super::hub_db::HubDb;

pub(crate) const TOKEN: &str = "test-token-0123456789abcdef";
pub(crate) const ALLOWED_ORIGIN: &str = "https://dashboard.example.test";

pub(crate) struct TestHub {
    pub(crate) hub: RunningHub,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    db: HubDb,
}

impl TestHub {
    pub(crate) async fn start(db: HubDb) -> TestHub {
        Self::start_with_timeout(db, Duration::from_secs(60)).await
    }

    pub(crate) async fn start_with_timeout(db: HubDb, heartbeat_timeout: Duration) -> TestHub {
        Self::start_with(db, heartbeat_timeout, None).await
    }

    /// A hub that polls the merge queue's pull requests as `polling` says.
    pub(crate) async fn start_polling(db: HubDb, polling: PullRequestPolling) -> TestHub {
        Self::start_with(db, Duration::from_secs(60), Some(polling)).await
    }

    async fn start_with(
        db: HubDb,
        heartbeat_timeout: Duration,
        pull_request_polling: Option<PullRequestPolling>,
    ) -> TestHub {
        let hub = server::start(ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: db.url.clone(),
            tokens: ApiTokens::new([TOKEN]).unwrap(),
            cors_origins: vec![ALLOWED_ORIGIN.parse().unwrap()],
            heartbeat_timeout,
            retry_backoff: RetryBackoff::default(),
            pull_request_polling,
        })
        .await
        .unwrap();
        let base = format!("http://{}", hub.addr);
        let http = agent_orch::http::http_client_builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        TestHub {
            hub,
            base,
            http,
            db,
        }
    }

    /// Another hub on the same database, as a second replica would run; polling pull requests
    /// as `pull_request_polling` says.
    pub(crate) async fn replica(
        &self,
        pull_request_polling: Option<PullRequestPolling>,
    ) -> RunningHub {
        server::start(ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: self.db.url.clone(),
            tokens: ApiTokens::new([TOKEN]).unwrap(),
            cors_origins: Vec::new(),
            heartbeat_timeout: Duration::from_secs(60),
            retry_backoff: RetryBackoff::default(),
            pull_request_polling,
        })
        .await
        .unwrap()
    }

    /// Imports `examples/fleet-plan.yaml` (27 tasks in 5 epics, 5 of them done, 2 ready) and
    /// returns the project's id.
    pub(crate) async fn import_fleet_plan(&self) -> i64 {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet-plan.yaml");
        let plan = agent_orch::hub::plan::Plan::load(&path).unwrap();
        let project = self
            .hub
            .state
            .store
            .import_plan(
                &plan.project.name,
                plan.project.repo.as_deref(),
                &plan.tasks(),
            )
            .await
            .unwrap();
        project.id
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        read(response).await
    }

    /// A write with the test token.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub(crate) async fn patch(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::PATCH, path, body).await
    }

    pub(crate) async fn stop(self) {
        self.hub.stop().await.unwrap();
    }
}

/// A `/ws` subscriber that reads the hub's events as JSON.
pub(crate) struct EventStream {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl EventStream {
    /// Subscribes to the hub at `addr` and waits for its hello, so the subscription is live.
    pub(crate) async fn connect(addr: std::net::SocketAddr) -> EventStream {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        let mut events = EventStream { socket };
        assert_eq!(events.next().await["type"], "hello");
        events
    }

    /// The next event; fails the test when none comes within 5 s.
    pub(crate) async fn next(&mut self) -> serde_json::Value {
        use futures::StreamExt;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(5), self.socket.next())
                .await
                .expect("an event within 5 s")
                .unwrap()
                .unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                return serde_json::from_str(&text).unwrap();
            }
        }
    }

    /// Closes the stream from this side, as a browser tab that goes away would.
    pub(crate) async fn leave(mut self) {
        self.socket.close(None).await.unwrap();
    }

    /// Waits for the hub to close the stream.
    pub(crate) async fn closed(mut self) -> bool {
        use futures::StreamExt;
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(message)) = self.socket.next().await {
                if message.is_close() {
                    return true;
                }
            }
            true
        })
        .await;
        let _ = self.socket.close(None).await;
        closed == Ok(true)
    }
}

async fn read(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, value)
}
