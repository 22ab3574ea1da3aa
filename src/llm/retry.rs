//! Retries of one HTTP exchange: 429, 5xx and refused connections, with exponential backoff,
//! honouring `Retry-After` (and Azure's `retry-after-ms`) up to a bound.
//!
//! This replaces async-openai's built-in retry layer, whose attempt count is fixed and which
//! sleeps for whatever `Retry-After` says, however long.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use reqwest::header::HeaderMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub max_retries: u32,
    /// Delay before the first retry when the server gives none; doubled each time.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A server asking to wait longer than this is not retried: the run should not stall.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        self.base_delay
            .saturating_mul(2_u32.saturating_pow(retry))
            .min(self.max_delay)
    }

    /// How long to wait before retry number `retry` (0-based), or `None` to give up.
    fn delay_after(
        &self,
        retry: u32,
        result: &Result<reqwest::Response, reqwest::Error>,
    ) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        match result {
            Ok(response) => {
                let status = response.status();
                if status.as_u16() != 429 && !status.is_server_error() {
                    return None;
                }
                match retry_after(response.headers()) {
                    Some(wait) if wait > self.max_retry_after => None,
                    Some(wait) => Some(wait),
                    None => Some(self.backoff(retry)),
                }
            }
            // A refused connection never reached the server, so a retry cannot duplicate work;
            // a timeout may have, and the timeout is the user's bound on waiting.
            Err(error) if error.is_connect() => Some(self.backoff(retry)),
            Err(_) => None,
        }
    }
}

/// The wait a server asked for: `retry-after-ms` (Azure), else `Retry-After` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The HTTP transport async-openai runs each request through.
#[derive(Clone, Debug)]
pub(crate) struct RetryingTransport {
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl RetryingTransport {
    pub(crate) fn new(client: reqwest::Client, policy: RetryPolicy) -> Self {
        Self { client, policy }
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send + 'static>>;

impl tower::Service<HttpRequestFactory> for RetryingTransport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequestFactory) -> Self::Future {
        let client = self.client.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let mut retry = 0;
            loop {
                let result = client.execute(request.build().await?).await;
                match policy.delay_after(retry, &result) {
                    Some(delay) => {
                        retry += 1;
                        tokio::time::sleep(delay).await;
                    }
                    None => return result.map_err(OpenAIError::Reqwest),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap_or_else(|_| unreachable!()));
        }
        map
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "250"), ("retry-after", "3")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        let delays: Vec<_> = (0..4).map(|r| policy.backoff(r)).collect();
        assert_eq!(
            delays,
            [100, 200, 350, 350].map(Duration::from_millis).to_vec()
        );
    }
}
