//! A hub served in-process on 127.0.0.1 (a free port) over a fresh database, and a real HTTP
//! client that carries the test token.

use std::time::Duration;

use agent_orch::hub::api::ApiTokens;
use agent_orch::hub::server::{self, RunningHub, ServeOptions};

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
        let hub = server::start(ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: db.url.clone(),
            tokens: ApiTokens::new([TOKEN]).unwrap(),
            cors_origins: vec![ALLOWED_ORIGIN.parse().unwrap()],
            heartbeat_timeout,
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

    /// Another hub on the same database, as a second replica would run.
    pub(crate) async fn replica(&self) -> RunningHub {
        server::start(ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: self.db.url.clone(),
            tokens: ApiTokens::new([TOKEN]).unwrap(),
            cors_origins: Vec::new(),
            heartbeat_timeout: Duration::from_secs(60),
        })
        .await
        .unwrap()
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
