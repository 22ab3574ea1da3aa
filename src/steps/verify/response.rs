//! One HTTP exchange: send a rendered request, read a bounded body, keep what judging,
//! logging and the fix step's evidence need.

use std::time::{Duration, Instant};

use super::analysis::{excerpt, millis};
use crate::redact::{MASK, Redactor, is_secret_name};
use crate::workflow::step_config::verify::HttpMethod;

/// Bodies are read up to this size; a check has no business downloading more.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How much of a body goes into the fix step's evidence.
const EVIDENCE_BODY_BYTES: usize = 2048;

/// A request with its templates rendered.
#[derive(Debug)]
pub(crate) struct RenderedRequest {
    pub(crate) method: HttpMethod,
    pub(crate) url: reqwest::Url,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<RenderedBody>,
    pub(crate) timeout: Duration,
}

#[derive(Debug)]
pub(crate) enum RenderedBody {
    Text(String),
    Json(serde_json::Value),
}

/// A response as it was received.
#[derive(Clone, Debug)]
pub(crate) struct ResponseSnapshot {
    pub(crate) method: &'static str,
    /// The url that answered (after redirects, if followed).
    pub(crate) url: String,
    pub(crate) status: u16,
    /// Names lowercased, in the order received.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
    pub(crate) body_truncated: bool,
    /// The body parsed as JSON, when it is JSON.
    pub(crate) json: Option<serde_json::Value>,
    /// From sending the request to the last byte of the body.
    pub(crate) latency: Duration,
}

/// Sends `request`; the whole exchange, body included, is bounded by its timeout.
/// The error is why no response came back, naming the url.
pub(crate) async fn send(
    client: &reqwest::Client,
    request: &RenderedRequest,
) -> Result<ResponseSnapshot, String> {
    let started = Instant::now();
    match tokio::time::timeout(request.timeout, exchange(client, request, started)).await {
        Ok(result) => result.map_err(|err| format!("{} ({})", describe(&err), request.url)),
        Err(_) => Err(format!(
            "request timed out after {} ({})",
            humantime::format_duration(request.timeout),
            request.url
        )),
    }
}

async fn exchange(
    client: &reqwest::Client,
    request: &RenderedRequest,
    started: Instant,
) -> Result<ResponseSnapshot, reqwest::Error> {
    let method = match request.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Head => reqwest::Method::HEAD,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
        HttpMethod::Options => reqwest::Method::OPTIONS,
    };
    let mut builder = client.request(method, request.url.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    builder = match &request.body {
        Some(RenderedBody::Text(text)) => builder.body(text.clone()),
        Some(RenderedBody::Json(value)) => builder.json(value),
        None => builder,
    };
    let mut response = builder.send().await?;
    let status = response.status().as_u16();
    let url = response.url().to_string();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut bytes = Vec::new();
    let mut body_truncated = false;
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            body_truncated = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    let latency = started.elapsed();
    let json = if body_truncated {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    Ok(ResponseSnapshot {
        method: request.method.as_str(),
        url,
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        body_truncated,
        json,
        latency,
    })
}

/// A lowercase reason for a failed exchange; connection refused is named as such because
/// it is the most common answer of a service that is not up.
fn describe(err: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut innermost = err.to_string();
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
                std::io::ErrorKind::ConnectionReset => return "connection reset".to_owned(),
                _ => {}
            }
        }
        innermost = current.to_string();
        source = current.source();
    }
    if err.is_connect() {
        format!("connection failed: {innermost}")
    } else if err.is_redirect() {
        format!("too many redirects: {innermost}")
    } else if err.is_body() || err.is_decode() {
        format!("failed to read the response body: {innermost}")
    } else {
        format!("request failed: {innermost}")
    }
}

impl ResponseSnapshot {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// `response` as conditions see it: `{status, headers, body, json, latency_ms}`.
    pub(crate) fn condition_value(&self) -> minijinja::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::Value::from(value.as_str())))
            .collect();
        let latency_ms = u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX);
        minijinja::Value::from(minijinja::value::Serde(serde_json::json!({
            "status": self.status,
            "headers": headers,
            "body": self.body,
            "json": self.json,
            "latency_ms": latency_ms,
        })))
    }

    /// One line for the step log.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} {} -> {} in {}",
            self.method,
            self.url,
            self.status,
            millis(self.latency)
        )
    }

    /// The response for the fix step: status line, headers, the first 2 KiB of the body.
    pub(crate) fn evidence(&self, redactor: &Redactor) -> String {
        let mut text = format!(
            "{} {}\nstatus {} in {}\n",
            self.method,
            self.url,
            self.status,
            millis(self.latency)
        );
        for (name, value) in &self.headers {
            let value = if is_secret_name(name) { MASK } else { value };
            text.push_str(&format!("{name}: {value}\n"));
        }
        text.push('\n');
        text.push_str(&excerpt(&self.body, EVIDENCE_BODY_BYTES));
        if self.body_truncated {
            text.push_str("\n(body truncated at 1 MiB)");
        }
        redactor.redact(&text).into_owned()
    }
}
