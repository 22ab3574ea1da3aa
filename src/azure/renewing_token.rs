//! [`RenewingToken`]: one scope's access token, kept and renewed before it expires, for a
//! client that sends many requests over a long time (a deploy to an Entra ID AKS cluster).
//!
//! The SDK's credentials cache their own tokens, but the Azure CLI link of the chain runs `az`
//! on every call and a failing link is tried again each time: one cached token avoids both.

use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential};
use azure_core::time::{Duration, OffsetDateTime};
use tokio::sync::Mutex;

use crate::core::secret::Secret;

/// Renew this long before expiry, as the Azure SDK's own token caches do: a request that takes
/// its time never carries a token that expires on the way.
const RENEW_BEFORE: Duration = Duration::minutes(5);

pub struct RenewingToken {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    current: Mutex<Option<AccessToken>>,
}

impl std::fmt::Debug for RenewingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenewingToken")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl RenewingToken {
    /// Tokens for `scope` (`<server id>/.default`) from `credential`; none is asked for yet.
    pub fn new(credential: Arc<dyn TokenCredential>, scope: String) -> Self {
        Self {
            credential,
            scope,
            current: Mutex::new(None),
        }
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The current token, renewed first when it expires within five minutes. Concurrent
    /// callers wait for one renewal rather than each asking for a token.
    pub async fn token(&self) -> azure_core::Result<Secret> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && token.expires_on > OffsetDateTime::now_utc() + RENEW_BEFORE
        {
            return Ok(Secret::new(token.token.secret()));
        }
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await?;
        let secret = Secret::new(token.token.secret());
        *current = Some(token);
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use azure_core::credentials::TokenRequestOptions;

    use super::*;

    /// Issues `token-<n>` valid for `lifetime`, counting the calls.
    #[derive(Debug)]
    struct Issuer {
        lifetime: Duration,
        issued: AtomicU32,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Issuer {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            assert_eq!(scopes, ["6dae42f8-4368-4678-94ff-3960e28e3630/.default"]);
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(AccessToken::new(
                format!("token-{n}"),
                OffsetDateTime::now_utc() + self.lifetime,
            ))
        }
    }

    async fn tokens(lifetime: Duration) -> Vec<String> {
        let issuer = Arc::new(Issuer {
            lifetime,
            issued: AtomicU32::new(0),
        });
        let token = RenewingToken::new(
            issuer,
            "6dae42f8-4368-4678-94ff-3960e28e3630/.default".to_owned(),
        );
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(token.token().await.unwrap().expose().to_owned());
        }
        seen
    }

    #[tokio::test]
    async fn a_fresh_token_is_reused_and_one_near_expiry_renewed() {
        assert_eq!(
            tokens(Duration::hours(1)).await,
            ["token-1", "token-1", "token-1"]
        );
        assert_eq!(
            tokens(Duration::minutes(4)).await,
            ["token-1", "token-2", "token-3"]
        );
    }
}
