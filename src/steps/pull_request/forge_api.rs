//! What Azure Repos and GitHub share on the wire: a request whose 403 or 401 becomes an error
//! naming what to grant, and a JSON answer read with the service named in its errors.

use super::PullRequestError;

/// One forge's REST API as the step judges its answers.
pub(crate) struct ForgeApi {
    /// For messages: `Azure Repos`, `GitHub`.
    pub(crate) service: &'static str,
    /// What to grant when the API answers 403.
    pub(crate) grant: &'static str,
    /// How to hand the step a token when the API answers 401.
    pub(crate) token_hint: &'static str,
}

impl ForgeApi {
    /// Sends `request` (with `body` as JSON, if any).
    pub(crate) async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
        body: Option<&serde_json::Value>,
        action: &'static str,
    ) -> Result<reqwest::Response, PullRequestError> {
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| PullRequestError::Transport {
                service: self.service,
                action,
                source,
            })?;
        let forbidden = |status, grant| {
            Err(PullRequestError::Forbidden {
                service: self.service,
                action,
                status,
                grant,
            })
        };
        match response.status() {
            reqwest::StatusCode::FORBIDDEN => forbidden(403, self.grant),
            reqwest::StatusCode::UNAUTHORIZED => forbidden(401, self.token_hint),
            _ => Ok(response),
        }
    }

    pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
        action: &'static str,
    ) -> Result<T, PullRequestError> {
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|source| PullRequestError::Transport {
                service: self.service,
                action,
                source,
            })?;
        serde_json::from_str(&text).map_err(|err| PullRequestError::Service {
            service: self.service,
            action,
            status,
            message: format!("unexpected answer: {err}"),
        })
    }
}
