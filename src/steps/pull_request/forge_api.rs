//! What Azure Repos and GitHub share on the wire: a request whose 403 or 401 becomes an error
//! naming what to grant, a rate limit told apart from a refusal, and a JSON answer read with
//! the service named in its errors.
//!
//! Rate limits, as both services document them: GitHub answers 403 or 429 with
//! `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (UTC epoch seconds) for its primary limit,
//! 403 or 429 with `retry-after` (seconds) or only a message for a secondary one, and asks for
//! a minute's wait when neither header says more
//! (<https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api#rate-limit-errors>);
//! Azure DevOps answers 429 with `Retry-After` and `X-RateLimit-Reset`
//! (<https://learn.microsoft.com/en-us/azure/devops/integrate/concepts/rate-limits>).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        if let Some(wait) = rate_limit_wait(&response, SystemTime::now()) {
            return Err(PullRequestError::RateLimited {
                service: self.service,
                action,
                wait,
            });
        }
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

/// How long to wait before asking again, when `response` says the caller is rate limited; `None`
/// for any other answer (a 403 without the rate-limit headers is a refusal). At most an hour
/// (GitHub's primary limit resets hourly): a forge's header cannot park the caller for ever,
/// nor overflow the clock it is added to.
fn rate_limit_wait(response: &reqwest::Response, now: SystemTime) -> Option<Duration> {
    const LONGEST: Duration = Duration::from_secs(3600);
    rate_limit_answer(response, now).map(|wait| wait.min(LONGEST))
}

fn rate_limit_answer(response: &reqwest::Response, now: SystemTime) -> Option<Duration> {
    /// What GitHub asks for when a limit's answer says nothing of when it ends.
    const UNSAID: Duration = Duration::from_secs(60);
    let status = response.status();
    let too_many = status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    if !too_many && status != reqwest::StatusCode::FORBIDDEN {
        return None;
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(seconds) = header("retry-after").and_then(|text| text.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset").and_then(|text| text.parse::<u64>().ok());
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        return Some(match reset {
            // At least a second: a reset that has just passed is often not yet in effect.
            Some(reset) => Duration::from_secs(reset.saturating_sub(now).max(1)),
            None => UNSAID,
        });
    }
    too_many.then_some(UNSAID)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        reqwest::Response::from(builder.body(String::new()).unwrap_or_default())
    }

    #[test]
    fn rate_limits_are_told_apart_from_refusals() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let wait =
            |status, headers: &[(&str, &str)]| rate_limit_wait(&answer(status, headers), now);
        // GitHub's primary limit: until the reset.
        let primary = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000042"),
        ];
        assert_eq!(wait(403, &primary), Some(Duration::from_secs(42)));
        assert_eq!(wait(429, &primary), Some(Duration::from_secs(42)));
        // A secondary limit, or Azure DevOps: `retry-after` wins.
        let retry = [("retry-after", "7"), ("x-ratelimit-remaining", "0")];
        assert_eq!(wait(403, &retry), Some(Duration::from_secs(7)));
        assert_eq!(
            wait(429, &[("Retry-After", "30")]),
            Some(Duration::from_secs(30))
        );
        // A limit that says nothing of its end: a minute; a reset already past: a second.
        assert_eq!(wait(429, &[]), Some(Duration::from_secs(60)));
        assert_eq!(
            wait(
                403,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")]
            ),
            Some(Duration::from_secs(1))
        );
        // A wait past an hour (or past what the clock holds) is an hour.
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(wait(429, &[("retry-after", "18446744073709551615")]), hour);
        assert_eq!(
            wait(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "99999999999")
                ]
            ),
            hour
        );
        // A refusal is not a limit, nor is a 403 with requests left, nor a success.
        assert_eq!(wait(403, &[]), None);
        assert_eq!(wait(403, &[("x-ratelimit-remaining", "4999")]), None);
        assert_eq!(wait(200, &retry), None);
    }
}
