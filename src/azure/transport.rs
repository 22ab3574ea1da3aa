//! [`AzureTransport`]: the HTTP client every Azure SDK call goes through (our reqwest, so the
//! SDK needs no second HTTP stack), with an optional redirect of every request to a loopback
//! address for tests.
//!
//! The Key Vault client refuses bearer tokens over plain `http`, so tests cannot point it at a
//! local fake by URL. Instead they keep the real-looking `https://<vault>.vault.azure.net` (and
//! `https://login.microsoftonline.com`) URLs and set [`OVERRIDE_ENV`] to the fake's address:
//! the transport then sends each request there, path and query unchanged, with the original
//! host in [`ORIGINAL_HOST_HEADER`]. Only loopback addresses are accepted, so the knob cannot
//! send tokens anywhere off the machine.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::error::{Error as AzureError, ErrorKind as AzureErrorKind};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::request::{Body, Request};
use azure_core::http::{AsyncRawResponse, HttpClient, Method, Transport, Url};

/// `AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE=http://127.0.0.1:<port>`: a test-only knob, by
/// convention; see the module documentation.
pub const OVERRIDE_ENV: &str = "AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE";

/// The header that carries a redirected request's original host (`fleet.vault.azure.net`).
pub const ORIGINAL_HOST_HEADER: &str = "x-agent-orch-original-host";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Key Vault and token requests are small; a request that takes longer is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the SDK's requests with reqwest, optionally to a loopback address instead.
pub struct AzureTransport {
    client: reqwest::Client,
    redirect_to: Option<Url>,
}

impl fmt::Debug for AzureTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureTransport")
            .field("redirect_to", &self.redirect_to.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{OVERRIDE_ENV}={value}`: {kind}")]
pub struct TransportError {
    pub value: String,
    pub kind: TransportErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportErrorKind {
    #[error("not a URL")]
    NotUrl,
    #[error("only `http://` loopback addresses are allowed (127.0.0.1, [::1], localhost)")]
    NotLoopback,
    #[error("failed to build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl AzureTransport {
    /// A transport to the real endpoints, or to `redirect_to` (a loopback `http` URL) for tests.
    pub fn new(redirect_to: Option<&str>) -> Result<Self, TransportError> {
        let error = |kind| TransportError {
            value: redirect_to.unwrap_or_default().to_owned(),
            kind,
        };
        let redirect_to = match redirect_to {
            None => None,
            Some(value) => {
                let url = Url::parse(value).map_err(|_| error(TransportErrorKind::NotUrl))?;
                if !is_loopback(&url) {
                    return Err(error(TransportErrorKind::NotLoopback));
                }
                Some(url)
            }
        };
        let client = crate::http::http_client_builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // The SDK handles redirects itself where a service uses them.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| error(TransportErrorKind::Client(source)))?;
        Ok(Self {
            client,
            redirect_to,
        })
    }

    /// The transport as SDK client options take it.
    pub fn into_sdk(self) -> Transport {
        Transport::new(Arc::new(self))
    }

    /// Where `url` is really sent.
    fn target(&self, url: &Url) -> Url {
        let Some(redirect) = &self.redirect_to else {
            return url.clone();
        };
        let mut target = redirect.clone();
        target.set_path(url.path());
        target.set_query(url.query());
        target
    }
}

fn is_loopback(url: &Url) -> bool {
    if url.scheme() != "http" {
        return false;
    }
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The same method in reqwest's terms (both spell methods as their HTTP names).
fn method(method: Method) -> azure_core::Result<reqwest::Method> {
    reqwest::Method::from_bytes(method.as_ref().as_bytes()).map_err(|_| {
        AzureError::with_message(
            AzureErrorKind::Other,
            format!("unsupported method {method}"),
        )
    })
}

#[async_trait::async_trait]
impl HttpClient for AzureTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let url = request.url();
        let mut builder = self
            .client
            .request(method(request.method())?, self.target(url));
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if self.redirect_to.is_some()
            && let Some(host) = url.host_str()
        {
            builder = builder.header(ORIGINAL_HOST_HEADER, host);
        }
        builder = match request.body() {
            Body::Bytes(bytes) => builder.body(bytes.to_vec()),
            // Secrets and tokens are small JSON or form bodies; nothing here streams uploads.
            Body::SeekableStream(_) => {
                return Err(AzureError::with_message(
                    AzureErrorKind::Other,
                    "streamed request bodies are not supported",
                ));
            }
        };
        let response = builder.send().await.map_err(|err| {
            let kind = if err.is_connect() || err.is_timeout() {
                AzureErrorKind::Connection
            } else {
                AzureErrorKind::Io
            };
            AzureError::with_error(kind, err, format!("request to `{}` failed", host_of(url)))
        })?;
        let status = response.status().as_u16();
        let headers: Headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from(name.as_str().to_owned()),
                    HeaderValue::from(value.to_str().ok()?.to_owned()),
                ))
            })
            .collect::<std::collections::HashMap<_, _>>()
            .into();
        let body = response.bytes().await.map_err(|err| {
            AzureError::with_error(
                AzureErrorKind::Io,
                err,
                format!("failed to read the response of `{}`", host_of(url)),
            )
        })?;
        Ok(AsyncRawResponse::from_bytes(status.into(), headers, body))
    }
}

fn host_of(url: &Url) -> &str {
    url.host_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_redirects_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://[::1]:1",
            "http://localhost:9",
        ] {
            assert!(AzureTransport::new(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:80",
            "https://127.0.0.1:443",
            "http://attacker.example:80",
            "http://127.0.0.1.attacker.example",
            "not a url",
        ] {
            let error = AzureTransport::new(Some(bad)).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("`{OVERRIDE_ENV}={bad}`: ")),
                "{error}"
            );
        }
    }

    #[test]
    fn redirect_keeps_path_and_query() {
        let transport = AzureTransport::new(Some("http://127.0.0.1:4000")).unwrap();
        let url =
            Url::parse("https://fleet.vault.azure.net/secrets/a/?api-version=2025-07-01").unwrap();
        assert_eq!(
            transport.target(&url).as_str(),
            "http://127.0.0.1:4000/secrets/a/?api-version=2025-07-01"
        );
        let direct = AzureTransport::new(None).unwrap();
        assert_eq!(direct.target(&url), url);
    }
}
