//! A typed client of the hub's API, used by `agent-orch worker` (and by anyone scripting the
//! hub from Rust). Every write carries the bearer token; every call has a timeout.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::model::{Assignment, AssignmentStatus, Claim, Evidence, HeartbeatAnswer, Task};
use super::store::NewEvidence;
use crate::core::secret::Secret;

/// The variable a worker reads its bearer token from.
pub const TOKEN_ENV: &str = "AGENT_ORCH_HUB_TOKEN";

/// Reads the token again after the hub refused it (it may have been rotated): the token now in
/// force, or why it could not be read.
pub type TokenRenewal = Arc<dyn Fn() -> BoxFuture<'static, Result<Secret, String>> + Send + Sync>;

#[derive(Clone)]
pub struct HubClient {
    base: String,
    /// Shared by clones, so a renewed token serves the heartbeat and the work loop alike.
    token: Arc<RwLock<Secret>>,
    renewal: Option<TokenRenewal>,
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
            token: Arc::new(RwLock::new(Secret::new(token))),
            renewal: None,
            http,
        })
    }

    /// When the hub answers 401, asks `renewal` for the token and, if it changed, sends the
    /// request again with it: a rotated token is picked up without a restart.
    pub fn with_token_renewal(mut self, renewal: TokenRenewal) -> HubClient {
        self.renewal = Some(renewal);
        self
    }

    pub async fn heartbeat(
        &self,
        id: &str,
        host: &str,
        capabilities: &[String],
    ) -> Result<HeartbeatAnswer, ClientError> {
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
            .call(
                reqwest::Method::POST,
                "/api/assignments/claim",
                &[],
                Some(&json!({"agent_id": agent_id})),
            )
            .await?;
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
        self.report_for(assignment_id, progress, status, note, false)
            .await
    }

    /// As [`HubClient::report`]; with `review`, a completion puts the task in `review` (its
    /// pull request waits to merge) instead of `done`.
    pub async fn report_for(
        &self,
        assignment_id: i64,
        progress: i64,
        status: AssignmentStatus,
        note: &str,
        review: bool,
    ) -> Result<Assignment, ClientError> {
        self.send(
            reqwest::Method::PATCH,
            &format!("/api/assignments/{assignment_id}/progress"),
            Some(&json!({"progress": progress, "status": status, "note": note, "review": review})),
        )
        .await
    }

    /// Records the branch and the pull request a task's work lives on.
    pub async fn set_git(
        &self,
        task_id: i64,
        branch: &str,
        pr_url: &str,
    ) -> Result<Task, ClientError> {
        self.send(
            reqwest::Method::PATCH,
            &format!("/api/tasks/{task_id}/git"),
            Some(&json!({"branch": branch, "pr_url": pr_url})),
        )
        .await
    }

    /// Records `evidence`; with an idempotency key, a retry after a lost answer records nothing new.
    pub async fn record_evidence(&self, evidence: &NewEvidence) -> Result<Evidence, ClientError> {
        self.send(
            reqwest::Method::POST,
            "/api/git/evidence",
            Some(&json!(evidence)),
        )
        .await
    }

    /// The agent's assignments still in progress.
    pub async fn active_assignments(&self, agent_id: &str) -> Result<Vec<Assignment>, ClientError> {
        let query = [("agent_id", agent_id), ("status", "active")];
        let response = self
            .call(reqwest::Method::GET, "/api/assignments", &query, None)
            .await?;
        decode(response).await
    }

    pub async fn task(&self, id: i64) -> Result<Task, ClientError> {
        self.send(reqwest::Method::GET, &format!("/api/tasks/{id}"), None)
            .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        decode(self.call(method, path, &[], body).await?).await
    }

    /// One request with the token in force; after a 401, once more with a renewed token.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, ClientError> {
        let token = self.token();
        let response = self
            .call_with(method.clone(), path, query, body, &token)
            .await?;
        let Some(renewal) = self
            .renewal
            .as_ref()
            .filter(|_| response.status() == StatusCode::UNAUTHORIZED)
        else {
            return Ok(response);
        };
        match renewal().await {
            Ok(renewed) if renewed != token => {
                *self.token.write().unwrap_or_else(PoisonError::into_inner) = renewed.clone();
                self.call_with(method, path, query, body, &renewed).await
            }
            // The same token again: the refusal stands.
            Ok(_) => Ok(response),
            Err(reason) => Err(ClientError {
                kind: ClientErrorKind::Status(401),
                message: format!(
                    "the hub refused the token (401), and reading it again failed: {reason}"
                ),
            }),
        }
    }

    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: &Secret,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|err| unreachable(&self.base, &err))
    }

    fn token(&self) -> Secret {
        self.token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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
