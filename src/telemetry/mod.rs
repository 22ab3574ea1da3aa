//! Telemetry: a run as an OpenTelemetry trace (run → iteration → step spans), exported when
//! the run has ended over OTLP/HTTP ([`otlp`]) and to Azure Application Insights
//! ([`app_insights`]), each when its standard environment variables are set.
//!
//! [`crate::report::telemetry`] builds the [`Trace`] from the run's (already masked) events;
//! this module holds the trace model, reads the exporters' settings and sends.
//!
//! Telemetry is a courtesy, like a notification: nothing here can fail or hold up a run. A
//! setting that does not parse is a warning and that exporter stays off; every export has a
//! deadline ([`Exporters::timeout`]) and a failed one comes back as a [`TelemetryError`] for the
//! caller to print as a warning.
//!
//! Why a hand-written exporter and not the `opentelemetry` crates: the run's spans are built
//! after the fact from events (start and end times included), not recorded live, so the SDK's
//! tracer, context propagation and batch processor would go unused; `opentelemetry-otlp` with
//! `http-json` still compiles the protobuf types (`prost`, `opentelemetry-proto`) for its JSON,
//! on top of `opentelemetry_sdk`, and Application Insights needs a second exporter crate
//! (`opentelemetry-application-insights`) with its own HTTP client plumbing. Both wire formats
//! are small, documented JSON (OTLP/HTTP's JSON encoding, the ingestion endpoint's envelope),
//! written here with `serde_json` and the one reqwest client: no new dependency, so no added
//! compile time on the 2-core build machines and nothing added to the binary but this code.

pub mod app_insights;
pub mod otlp;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::redact::Redactor;

use self::app_insights::AppInsightsExporter;
use self::otlp::OtlpExporter;

/// How long an export may take when `OTEL_EXPORTER_OTLP_TIMEOUT` does not say: short, since
/// the run has already ended and the pipeline waits for the process to exit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What `service.name` is when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES`
/// names one.
pub const SERVICE_NAME: &str = "agent-orch";

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// One finished run: its spans and the resource (the service) they came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub resource: Vec<Attribute>,
    pub spans: Vec<Span>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for the root (the run), unless the run was started inside another trace
    /// (`TRACEPARENT`).
    pub parent: Option<SpanId>,
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub status: SpanStatus,
    pub attributes: Vec<Attribute>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SpanStatus {
    Unset,
    Ok,
    Error(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub key: String,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    String(String),
    Int(i64),
    Bool(bool),
}

impl Attribute {
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: Value::String(value.into()),
        }
    }

    pub fn int(key: impl Into<String>, value: impl TryInto<i64>) -> Self {
        Self {
            key: key.into(),
            value: Value::Int(value.try_into().unwrap_or(i64::MAX)),
        }
    }

    pub fn bool(key: impl Into<String>, value: bool) -> Self {
        Self {
            key: key.into(),
            value: Value::Bool(value),
        }
    }
}

impl Value {
    /// The value as text, for formats whose properties are strings (Application Insights).
    pub fn to_text(&self) -> String {
        match self {
            Value::String(text) => text.clone(),
            Value::Int(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
        }
    }
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|attribute| attribute.key == key)
            .map(|attribute| &attribute.value)
    }
}

impl Trace {
    /// Every text in the trace through `redactor`: span names, string attributes, status
    /// messages and the resource. The events it was built from were masked already; this
    /// covers what came from elsewhere (resource attributes) and is the last word before
    /// anything leaves the machine.
    pub fn redact(&mut self, redactor: &Redactor) {
        let texts = |attributes: &mut Vec<Attribute>| {
            for attribute in attributes {
                if let Value::String(text) = &mut attribute.value {
                    redactor.redact_in_place(text);
                }
            }
        };
        texts(&mut self.resource);
        for span in &mut self.spans {
            redactor.redact_in_place(&mut span.name);
            texts(&mut span.attributes);
            if let SpanStatus::Error(message) = &mut span.status {
                redactor.redact_in_place(message);
            }
        }
    }

    pub fn root(&self) -> Option<&Span> {
        self.spans.first()
    }
}

/// A fresh trace id: random per W3C Trace Context, from the process's hash keys (random per
/// process), the clock and a counter, so no random-number crate is needed.
pub fn new_trace_id() -> TraceId {
    let digest = random_digest();
    let mut id = [0; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

pub fn new_span_id() -> SpanId {
    let digest = random_digest();
    let mut id = [0; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

fn random_digest() -> [u8; 32] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let keys = RandomState::new();
    let mut hasher = Sha256::new();
    hasher.update(keys.hash_one(count).to_le_bytes());
    hasher.update(keys.hash_one(nanos).to_le_bytes());
    hasher.update(nanos.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(count.to_le_bytes());
    hasher.finalize().into()
}

/// The caller's trace from a W3C `traceparent` value (`00-<trace id>-<parent id>-<flags>`),
/// so a run started by a traced pipeline joins its trace. `None` for anything else.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || flags.len() != 2 || parts.next().is_some() {
        return None;
    }
    let trace: TraceId = hex::decode(trace).ok()?.try_into().ok()?;
    let parent: SpanId = hex::decode(parent).ok()?.try_into().ok()?;
    // All zeros is invalid for both (W3C Trace Context, "trace-id" and "parent-id").
    (trace != [0; 16] && parent != [0; 8]).then_some((trace, parent))
}

/// Where the trace goes, read from the environment once before the run.
#[derive(Debug, Default)]
pub struct Exporters {
    pub otlp: Option<OtlpExporter>,
    pub app_insights: Option<AppInsightsExporter>,
    pub timeout: Duration,
    /// `service.name` and the rest of `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: Vec<Attribute>,
    /// The trace the run joins (`TRACEPARENT`).
    pub parent: Option<(TraceId, SpanId)>,
}

#[derive(Debug, thiserror::Error)]
#[error("telemetry to {destination} not sent: {reason}")]
pub struct TelemetryError {
    pub destination: &'static str,
    pub reason: String,
}

impl Exporters {
    /// The exporters `env` (a variable lookup: `&|name| std::env::var(name).ok()`) asks for,
    /// and one warning per setting that does not parse (that exporter stays off).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|value| value.trim().eq_ignore_ascii_case("true")) {
            return (Self::default(), warnings);
        }
        let otlp = match OtlpExporter::from_env(&set) {
            Ok(otlp) => otlp,
            Err(warning) => {
                warnings.push(warning);
                None
            }
        };
        let app_insights = match set(app_insights::CONNECTION_STRING_ENV) {
            None => None,
            Some(text) => match AppInsightsExporter::from_connection_string(&text) {
                Ok(exporter) => Some(exporter),
                Err(err) => {
                    warnings.push(format!(
                        "{} is left unused: {err}",
                        app_insights::CONNECTION_STRING_ENV
                    ));
                    None
                }
            },
        };
        let timeout = match otlp::timeout_from_env(&set) {
            Ok(timeout) => timeout.unwrap_or(DEFAULT_TIMEOUT),
            Err(warning) => {
                warnings.push(warning);
                DEFAULT_TIMEOUT
            }
        };
        let resource = match otlp::resource_from_env(&set) {
            Ok(resource) => resource,
            Err(warning) => {
                warnings.push(warning);
                vec![Attribute::string("service.name", SERVICE_NAME)]
            }
        };
        let parent = set("TRACEPARENT").and_then(|value| {
            let parent = parse_traceparent(&value);
            if parent.is_none() {
                warnings.push(
                    "TRACEPARENT is not a W3C traceparent; the run starts its own trace".to_owned(),
                );
            }
            parent
        });
        (
            Self {
                otlp,
                app_insights,
                timeout,
                resource,
                parent,
            },
            warnings,
        )
    }

    /// Nowhere to send: the run needs no trace.
    pub fn is_empty(&self) -> bool {
        self.otlp.is_none() && self.app_insights.is_none()
    }

    /// Values the run must mask everywhere: the OTLP header values (API keys) and the
    /// Application Insights instrumentation key.
    pub fn secret_values(&self) -> Vec<&str> {
        let mut values: Vec<&str> = self
            .otlp
            .iter()
            .flat_map(OtlpExporter::header_values)
            .collect();
        values.extend(
            self.app_insights
                .iter()
                .map(AppInsightsExporter::instrumentation_key),
        );
        values
    }

    /// Sends `trace` everywhere at once, each within [`Exporters::timeout`]; returns the
    /// failures. Never panics and never takes much longer than the timeout.
    pub async fn export(&self, trace: &Trace) -> Vec<TelemetryError> {
        if trace.spans.is_empty() || self.is_empty() {
            return Vec::new();
        }
        let client = match crate::http::http_client_builder()
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .build()
        {
            Ok(client) => client,
            Err(err) => {
                return vec![TelemetryError {
                    destination: "any exporter",
                    reason: crate::core::error_chain::error_chain(&err),
                }];
            }
        };
        let otlp = async {
            match &self.otlp {
                Some(exporter) => exporter.send(&client, trace).await.err(),
                None => None,
            }
        };
        let app_insights = async {
            match &self.app_insights {
                Some(exporter) => exporter.send(&client, trace).await.err(),
                None => None,
            }
        };
        // reqwest's timeout covers each request; this bounds everything around it as well.
        let deadline = self.timeout + Duration::from_millis(500);
        match tokio::time::timeout(deadline, futures::future::join(otlp, app_insights)).await {
            Ok((otlp, app_insights)) => otlp.into_iter().chain(app_insights).collect(),
            Err(_) => vec![TelemetryError {
                destination: "its exporters",
                reason: format!("timed out after {}", humantime::format_duration(deadline)),
            }],
        }
    }
}

/// A failed HTTP exchange in words: the transport error without the URL (which may carry a
/// token), or the status and the first part of the body.
pub(crate) async fn http_failure(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<String, String> {
    let response = sent.map_err(|err| {
        let err = err.without_url();
        if err.is_timeout() {
            "timed out".to_owned()
        } else {
            crate::core::error_chain::error_chain(&err)
        }
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(body);
    }
    let body: String = body.trim().chars().take(200).collect();
    Err(if body.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {body}")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn exporters(vars: &[(&str, &str)]) -> (Exporters, Vec<String>) {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Exporters::from_env(&|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_set_means_nothing_to_export() {
        let (exporters, warnings) = exporters(&[]);
        assert!(exporters.is_empty());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(exporters.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn the_sdk_switch_turns_everything_off() {
        let (exporters, _) = exporters(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ]);
        assert!(exporters.is_empty());
    }

    #[test]
    fn a_bad_connection_string_is_a_warning_that_names_no_value() {
        let (exporters, warnings) = exporters(&[(
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "IngestionEndpoint=https://x/;Secret=hunter2",
        )]);
        assert!(exporters.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("InstrumentationKey"), "{warnings:?}");
        assert!(!warnings[0].contains("hunter2"), "{warnings:?}");
    }

    #[test]
    fn header_values_and_the_instrumentation_key_are_secrets() {
        let (exporters, warnings) = exporters(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=k3y-value,x-tenant=acme",
            ),
            (
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
                "InstrumentationKey=00000000-1111-2222-3333-444444444444",
            ),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            exporters.secret_values(),
            ["k3y-value", "acme", "00000000-1111-2222-3333-444444444444"]
        );
    }

    #[test]
    fn traceparent_joins_the_callers_trace_and_rejects_the_rest() {
        let (trace, parent) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex::encode(trace), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(parent), "00f067aa0ba902b7");
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_differ_each_time() {
        assert_ne!(new_trace_id(), new_trace_id());
        assert_ne!(new_span_id(), new_span_id());
    }

    #[test]
    fn redact_masks_names_attributes_statuses_and_the_resource() {
        let at = SystemTime::UNIX_EPOCH;
        let mut trace = Trace {
            resource: vec![Attribute::string("deployment", "hunter2-pw")],
            spans: vec![Span {
                trace_id: [1; 16],
                span_id: [2; 8],
                parent: None,
                name: "step hunter2-pw".to_owned(),
                start: at,
                end: at,
                status: SpanStatus::Error("login failed for hunter2-pw".to_owned()),
                attributes: vec![
                    Attribute::string("message", "hunter2-pw"),
                    Attribute::int("count", 3),
                ],
            }],
        };
        trace.redact(&Redactor::builder().secret("hunter2-pw").build());
        let text = format!("{trace:?}");
        assert!(!text.contains("hunter2-pw"), "{text}");
        assert_eq!(text.matches("***").count(), 4, "{text}");
    }
}
