//! Bearer tokens for every write. Tokens come from the environment (never from code or flags,
//! which end up in shell history and process lists); only their SHA-256 digests are kept, and
//! comparison does not stop at the first differing byte.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// The variable `hub serve` reads its accepted tokens from (comma-separated).
pub const TOKENS_ENV: &str = "AGENT_ORCH_HUB_TOKENS";
/// Tokens shorter than this are refused: they could be guessed.
const MIN_TOKEN_LENGTH: usize = 16;

#[derive(Clone)]
pub struct ApiTokens {
    digests: Arc<Vec<[u8; 32]>>,
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiTokens({} tokens)", self.digests.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no API tokens: set {TOKENS_ENV} to one or more comma-separated bearer tokens")]
    Missing,
    #[error("an API token in {TOKENS_ENV} is shorter than {MIN_TOKEN_LENGTH} characters")]
    TooShort,
}

impl ApiTokens {
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<ApiTokens, TokenError> {
        let mut digests = Vec::new();
        for token in tokens.into_iter().map(str::trim).filter(|t| !t.is_empty()) {
            if token.len() < MIN_TOKEN_LENGTH {
                return Err(TokenError::TooShort);
            }
            digests.push(digest(token));
        }
        if digests.is_empty() {
            return Err(TokenError::Missing);
        }
        Ok(ApiTokens {
            digests: Arc::new(digests),
        })
    }

    pub fn from_env() -> Result<ApiTokens, TokenError> {
        let value = std::env::var(TOKENS_ENV).unwrap_or_default();
        Self::new(value.split(','))
    }

    fn accepts(&self, token: &str) -> bool {
        let candidate = digest(token);
        // Check every known digest with a full-length comparison, so timing says nothing.
        self.digests.iter().fold(false, |found, known| {
            let difference = known
                .iter()
                .zip(candidate.iter())
                .fold(0_u8, |acc, (a, b)| acc | (a ^ b));
            found | (difference == 0)
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Lets reads through and requires a known bearer token on anything that changes state.
pub(crate) async fn require_token_for_writes(
    State(tokens): State<ApiTokens>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let problem = match presented {
        None => "missing bearer token: send `Authorization: Bearer <token>`",
        Some(token) if tokens.accepts(token) => return next.run(request).await,
        Some(_) => "invalid bearer token",
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, problem).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_are_accepted() {
        let tokens = ApiTokens::new(["first-token-0123456", " second-token-0123456 "]).unwrap();
        assert!(tokens.accepts("first-token-0123456"));
        assert!(tokens.accepts("second-token-0123456"));
        assert!(!tokens.accepts("first-token-012345"));
        assert!(!tokens.accepts(""));
        assert!(matches!(
            ApiTokens::new([" ", ""]),
            Err(TokenError::Missing)
        ));
        assert!(matches!(
            ApiTokens::new(["short"]),
            Err(TokenError::TooShort)
        ));
        assert_eq!(
            format!("{tokens:?}"),
            "ApiTokens(2 tokens)",
            "no token in debug output"
        );
    }
}
