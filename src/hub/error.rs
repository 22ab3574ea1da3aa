//! Errors of the hub commands (`hub serve`, `hub seed`, `worker`), before or around serving.

use std::net::SocketAddr;

use super::api::TokenError;
use super::plan::PlanError;
use super::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the hub server failed")]
    Serve(#[source] std::io::Error),
    #[error("invalid CORS origin `{0}`")]
    CorsOrigin(String),
    #[error("worker failed: {0}")]
    Worker(String),
    #[error("failed to read {what} from Key Vault")]
    KeyVault {
        what: &'static str,
        #[source]
        source: crate::azure::SecretsError,
    },
    #[error("the hub at {url} is not healthy: {reason}")]
    Unhealthy { url: String, reason: String },
}

impl HubError {
    /// Mistakes in what the user gave (a plan, a token, an origin) as opposed to failures.
    pub fn is_usage(&self) -> bool {
        match self {
            HubError::Plan(_) | HubError::Tokens(_) | HubError::CorsOrigin(_) => true,
            HubError::Store(err) => err.kind == super::store::StoreErrorKind::Url,
            HubError::Bind { .. }
            | HubError::Serve(_)
            | HubError::Worker(_)
            | HubError::KeyVault { .. }
            | HubError::Unhealthy { .. } => false,
        }
    }
}
