//! Bearer tokens for every write. Tokens come from the environment or a Key Vault secret
//! (never from code or flags, which end up in shell history and process lists); only their
//! SHA-256 digests are kept, and comparison does not stop at the first differing byte.

use std::sync::{Arc, PoisonError, RwLock};

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

/// The accepted tokens. Clones share one set, so a rotation ([`ApiTokens::replace_with`]) takes
/// effect for every request from then on.
#[derive(Clone)]
pub struct ApiTokens {
    digests: Arc<RwLock<Arc<Vec<[u8; 32]>>>>,
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiTokens({} tokens)", self.count())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "no API tokens: set {TOKENS_ENV} to one or more comma-separated bearer tokens, or name a \
         Key Vault secret that holds them with --tokens-vault"
    )]
    Missing,
    #[error("{origin} holds no API tokens (expected one or more comma-separated bearer tokens)")]
    Empty { origin: String },
    #[error("an API token in {origin} is shorter than {MIN_TOKEN_LENGTH} characters")]
    TooShort { origin: String },
    #[error(
        "API tokens are given both in {TOKENS_ENV} and in Key Vault (--tokens-vault); keep one, \
         so a token removed from one place cannot live on in the other"
    )]
    TwoSources,
}

impl ApiTokens {
    /// Tokens given directly (tests, benchmarks, embedding).
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<ApiTokens, TokenError> {
        Self::collect(tokens, "the given tokens")
    }

    /// A comma-separated list, as `origin` (`AGENT_ORCH_HUB_TOKENS`, a vault's secret) holds
    /// them; `origin` names it in errors, never the tokens themselves.
    pub fn from_list(list: &str, origin: &str) -> Result<ApiTokens, TokenError> {
        Self::collect(list.split(','), origin)
    }

    /// `AGENT_ORCH_HUB_TOKENS`.
    pub fn from_env() -> Result<ApiTokens, TokenError> {
        let value = std::env::var(TOKENS_ENV).unwrap_or_default();
        match Self::from_list(&value, TOKENS_ENV) {
            Err(TokenError::Empty { .. }) => Err(TokenError::Missing),
            tokens => tokens,
        }
    }

    fn collect<'a>(
        tokens: impl IntoIterator<Item = &'a str>,
        origin: &str,
    ) -> Result<ApiTokens, TokenError> {
        let mut digests = Vec::new();
        for token in tokens.into_iter().map(str::trim).filter(|t| !t.is_empty()) {
            if token.len() < MIN_TOKEN_LENGTH {
                return Err(TokenError::TooShort {
                    origin: origin.to_owned(),
                });
            }
            digests.push(digest(token));
        }
        // Sorted, so the same tokens listed in another order are the same set.
        digests.sort_unstable();
        digests.dedup();
        if digests.is_empty() {
            return Err(TokenError::Empty {
                origin: origin.to_owned(),
            });
        }
        Ok(ApiTokens {
            digests: Arc::new(RwLock::new(Arc::new(digests))),
        })
    }

    /// How many tokens are accepted (for the start-up line; never the tokens).
    pub fn count(&self) -> usize {
        self.current().len()
    }

    /// Accepts `fresh`'s tokens from now on, and only those. Says whether anything changed.
    pub fn replace_with(&self, fresh: &ApiTokens) -> bool {
        let fresh = fresh.current();
        let mut digests = self.digests.write().unwrap_or_else(PoisonError::into_inner);
        let changed = *digests != fresh;
        *digests = fresh;
        changed
    }

    /// The set in force; a rotation during a request does not change the set it checks against.
    fn current(&self) -> Arc<Vec<[u8; 32]>> {
        // Writers only swap an `Arc`, so a poisoned lock still holds a whole set.
        Arc::clone(&self.digests.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn accepts(&self, token: &str) -> bool {
        let candidate = digest(token);
        // Check every known digest with a full-length comparison, so timing says nothing.
        self.current().iter().fold(false, |found, known| {
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
            Err(TokenError::Empty { .. })
        ));
        let short =
            ApiTokens::from_list("long-enough-token-0123, short", "secret `t`").unwrap_err();
        assert_eq!(
            short.to_string(),
            "an API token in secret `t` is shorter than 16 characters"
        );
        assert_eq!(
            format!("{tokens:?}"),
            "ApiTokens(2 tokens)",
            "no token in debug output"
        );
    }

    #[test]
    fn a_rotation_reaches_every_clone_and_retires_the_old_tokens() {
        let tokens = ApiTokens::new(["first-token-0123456", "second-token-0123456"]).unwrap();
        let in_the_router = tokens.clone();
        let same_in_other_order =
            ApiTokens::from_list("second-token-0123456,first-token-0123456", "t").unwrap();
        assert!(!tokens.replace_with(&same_in_other_order));

        let rotated = ApiTokens::new(["second-token-0123456", "third-token-0123456"]).unwrap();
        assert!(tokens.replace_with(&rotated));
        assert!(!in_the_router.accepts("first-token-0123456"));
        assert!(in_the_router.accepts("second-token-0123456"));
        assert!(in_the_router.accepts("third-token-0123456"));
        assert_eq!(in_the_router.count(), 2);
    }
}
