//! A typed client of the hub's API, used by `agent-orch worker` (and by anyone scripting the
//! hub from Rust). Every write carries the bearer token; every call has a timeout.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::model::{Agent, Assignment, AssignmentStatus, Claim, Evidence, Task};
use super::store::NewEvidence;

/// The variable a worker reads its bearer token from.
pub const TOKEN_ENV: &str = "AGENT_ORCH_HUB_TOKEN";

#[derive(Clone)]
pub struct HubClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    pub kind: ClientErrorKind,
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientErrorKind {
    /// The hub could not be reached, did not answer in time, or its answer was cut off.
    Unreachable,
    /// The hub answered with this status (a 409 means the state moved on, e.g. requeued).
    Status(u16),
    /// The hub's answer was not what the API promises.
    Decode,
}

impl ClientError {
    pub fn is_conflict(&self) -> bool {
        self.kind == ClientErrorKind::Status(409)
    }

    /// The hub is down, restarting or overloaded: asking again later may work.
    pub fn is_transient(&self) -> bool {
        match self.kind {
            ClientErrorKind::Unreachable => true,
            ClientErrorKind::Status(status) => status >= 500,
            ClientErrorKind::Decode => false,
        }
    }
}

impl HubClient {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<HubClient, ClientError> {
        let http = crate::http::http_client_builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|err| ClientError {
                kind: ClientErrorKind::Unreachable,
                message: format!("failed to build the HTTP client: {err}"),
            })?;
        Ok(HubClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    pub async fn heartbeat(
        &self,
        id: &str,
        host: &str,
        capabilities: &[String],
    ) -> Result<Agent, ClientError> {
        self.send(
            reqwest::Method::POST,
            "/api/agents/heartbeat",
            Some(&json!({"id": id, "host": host, "capabilities": capabilities})),
        )
        .await
    }

    /// The next ready task, or `None` when nothing is ready (the hub's 204).
    pub async fn claim(&self, agent_id: &str) -> Result<Option<Claim>, ClientError> {
        let response = self
            .request(reqwest::Method::POST, "/api/assignments/claim")
            .json(&json!({"agent_id": agent_id}))
            .send()
            .await
            .map_err(|err| unreachable(&self.base, &err))?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        decode(response).await.map(Some)
    }

    pub async fn report(
        &self,
        assignment_id: i64,
        progress: i64,
        status: AssignmentStatus,
        note: &str,
    ) -> Result<Assignment, ClientError> {
        self.send(
            reqwest::Method::PATCH,
            &format!("/api/assignments/{assignment_id}/progress"),
            Some(&json!({"progress": progress, "status": status, "note": note})),
        )
        .await
    }

    /// Records `evidence`; with an idempotency key, a retry after a lost answer records nothing new.
    pub async fn record_evidence(&self, evidence: &NewEvidence) -> Result<Evidence, ClientError> {
        self.send(
            reqwest::Method::POST,
            "/api/git/evidence",
            Some(&json!({
                "task_id": evidence.task_id, "agent_id": evidence.agent_id, "kind": evidence.kind,
                "reference": evidence.reference, "detail": evidence.detail,
                "idempotency_key": evidence.idempotency_key,
            })),
        )
        .await
    }

    /// The agent's assignments still in progress.
    pub async fn active_assignments(&self, agent_id: &str) -> Result<Vec<Assignment>, ClientError> {
        let response = self
            .request(reqwest::Method::GET, "/api/assignments")
            .query(&[("agent_id", agent_id), ("status", "active")])
            .send()
            .await
            .map_err(|err| unreachable(&self.base, &err))?;
        decode(response).await
    }

    pub async fn task(&self, id: i64) -> Result<Task, ClientError> {
        self.send::<(), _>(reqwest::Method::GET, &format!("/api/tasks/{id}"), None)
            .await
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|err| unreachable(&self.base, &err))?;
        decode(response).await
    }
}

fn unreachable(base: &str, err: &reqwest::Error) -> ClientError {
    ClientError {
        kind: ClientErrorKind::Unreachable,
        message: format!("failed to reach the hub at {base}: {err}"),
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
    let status = response.status();
    if !status.is_success() {
        // The hub's errors are `{"error": "..."}`; say it as the hub said it.
        let body = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value.get("error")?.as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(ClientError {
            kind: ClientErrorKind::Status(status.as_u16()),
            message: format!("the hub answered {status}: {reason}"),
        });
    }
    // A body cut off mid-way is the hub going away (the request may have been carried out), not
    // a malformed answer: read it apart from parsing it so the caller can retry.
    let body = response.bytes().await.map_err(|err| ClientError {
        kind: ClientErrorKind::Unreachable,
        message: format!("the hub's answer was cut off: {err}"),
    })?;
    serde_json::from_slice(&body).map_err(|err| ClientError {
        kind: ClientErrorKind::Decode,
        message: format!("failed to read the hub's answer: {err}"),
    })
}
