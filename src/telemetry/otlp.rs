//! OTLP/HTTP with the JSON encoding: `POST <endpoint>/v1/traces`, `Content-Type:
//! application/json`, one `ExportTraceServiceRequest`.
//!
//! Settings are the standard ones (opentelemetry.io, "OTLP Exporter Configuration" and the
//! specification's "OpenTelemetry Protocol Exporter"): `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//! used as it is; `OTEL_EXPORTER_OTLP_ENDPOINT` is a base that `v1/traces` is appended to;
//! `OTEL_EXPORTER_OTLP[_TRACES]_HEADERS` is `name=value,...` with percent-encoded values;
//! `OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT` is in milliseconds; `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`
//! may be `http/json` or `http/protobuf` (both are OTLP/HTTP on the same path; we send
//! JSON), not `grpc`. Unlike the SDKs, nothing is sent when no endpoint is set: a deploy tool
//! does not post to `localhost:4318` unasked. `OTEL_TRACES_EXPORTER=none` turns it off.
//!
//! The JSON encoding (opentelemetry.io, "OTLP Specification", "JSON Protobuf Encoding"):
//! field names in lowerCamelCase, trace and span ids as hex (not base64), 64-bit integers as
//! strings, enums as numbers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value as Json, json};

use super::{Attribute, SERVICE_NAME, SpanStatus, TelemetryError, Trace, Value, http_failure};

/// `SPAN_KIND_INTERNAL`: every span of a run is work inside agent-orch.
const SPAN_KIND_INTERNAL: u8 = 1;
const STATUS_UNSET: u8 = 0;
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

pub struct OtlpExporter {
    url: reqwest::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The decoded header values, to mask.
    header_values: Vec<String>,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are credentials (API keys).
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("OtlpExporter")
            .field("url", &self.url.as_str())
            .field("headers", &names)
            .finish()
    }
}

/// The traces-specific variable if set, else the general one.
fn either(env: &dyn Fn(&str) -> Option<String>, suffix: &str) -> Option<(String, String)> {
    [
        format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"),
        format!("OTEL_EXPORTER_OTLP_{suffix}"),
    ]
    .into_iter()
    .find_map(|name| env(&name).map(|value| (name, value)))
}

impl OtlpExporter {
    /// The exporter the environment sets up, `None` when no endpoint is set; `Err` is a
    /// warning (the setting is named, never a header value).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        if env("OTEL_TRACES_EXPORTER").is_some_and(|value| value.trim() == "none") {
            return Ok(None);
        }
        let url = match (
            env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.trim().to_owned()),
            (None, Some(base)) => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{}/v1/traces", base.trim().trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        let (variable, url) = url;
        let url = reqwest::Url::parse(&url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                format!("{variable} is not an http(s) URL; traces are not exported over OTLP")
            })?;
        if let Some((variable, protocol)) = either(env, "PROTOCOL") {
            let protocol = protocol.trim();
            if !matches!(protocol, "http/json" | "http/protobuf") {
                return Err(format!(
                    "{variable}={protocol} is not supported (agent-orch speaks OTLP/HTTP with \
                     JSON: use http/json and the collector's HTTP port, 4318 by default); traces \
                     are not exported over OTLP"
                ));
            }
        }
        let mut headers = Vec::new();
        let mut header_values = Vec::new();
        if let Some((variable, text)) = either(env, "HEADERS") {
            for (index, (name, value)) in key_values(&text)
                .map_err(|index| {
                    format!(
                        "{variable}: entry {} is not name=value; traces are not exported \
                         over OTLP",
                        index + 1
                    )
                })?
                .into_iter()
                .enumerate()
            {
                let bad = || {
                    format!(
                        "{variable}: header {} is not a valid HTTP header; traces are not \
                         exported over OTLP",
                        index + 1
                    )
                };
                let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
                let mut header_value = HeaderValue::from_str(&value).map_err(|_| bad())?;
                header_value.set_sensitive(true);
                headers.push((header_name, header_value));
                header_values.push(value);
            }
        }
        Ok(Some(Self {
            url,
            headers,
            header_values,
        }))
    }

    pub fn header_values(&self) -> impl Iterator<Item = &str> {
        self.header_values.iter().map(String::as_str)
    }

    pub async fn send(
        &self,
        client: &reqwest::Client,
        trace: &Trace,
    ) -> Result<(), TelemetryError> {
        let fail = |reason: String| TelemetryError {
            destination: "the OTLP endpoint",
            reason,
        };
        let mut request = client.post(self.url.clone()).json(&body(trace));
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let answer = http_failure(request.send().await).await.map_err(fail)?;
        // A 200 may still reject spans (`partialSuccess`, OTLP "Partial Success").
        let answer: Json = serde_json::from_str(&answer).unwrap_or(Json::Null);
        let partial = &answer["partialSuccess"];
        let rejected = match &partial["rejectedSpans"] {
            Json::String(count) => count.parse().unwrap_or(0),
            count => count.as_u64().unwrap_or(0),
        };
        if rejected > 0 {
            let message = partial["errorMessage"].as_str().unwrap_or_default();
            return Err(fail(format!(
                "the collector rejected {rejected} span(s): {message}"
            )));
        }
        Ok(())
    }
}

/// The export timeout in `OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT` (milliseconds), if set.
pub fn timeout_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Duration>, String> {
    let Some((variable, text)) = either(env, "TIMEOUT") else {
        return Ok(None);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|millis| *millis > 0)
        .map(|millis| Some(Duration::from_millis(millis)))
        .ok_or_else(|| {
            format!(
                "{variable} is not a positive number of milliseconds; telemetry uses {}",
                humantime::format_duration(super::DEFAULT_TIMEOUT)
            )
        })
}

/// The resource: `OTEL_RESOURCE_ATTRIBUTES` (`key=value,...`), `service.name` from
/// `OTEL_SERVICE_NAME` over those, `agent-orch` when neither names it.
pub fn resource_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Attribute>, String> {
    let mut pairs = match env("OTEL_RESOURCE_ATTRIBUTES") {
        Some(text) => key_values(&text).map_err(|index| {
            format!(
                "OTEL_RESOURCE_ATTRIBUTES: entry {} is not key=value; it is left out",
                index + 1
            )
        })?,
        None => Vec::new(),
    };
    let service = env("OTEL_SERVICE_NAME").map(|name| name.trim().to_owned());
    pairs.retain(|(key, _)| !(key == "service.name" && service.is_some()));
    if let Some(service) = service {
        pairs.insert(0, ("service.name".to_owned(), service));
    } else if !pairs.iter().any(|(key, _)| key == "service.name") {
        pairs.insert(0, ("service.name".to_owned(), SERVICE_NAME.to_owned()));
    }
    let mut resource: Vec<Attribute> = pairs
        .into_iter()
        .map(|(key, value)| Attribute::string(key, value))
        .collect();
    resource.push(Attribute::string(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    Ok(resource)
}

/// `a=1, b=x%20y` as pairs with the values percent-decoded (the W3C Baggage format the
/// specification gives these variables); `Err` is the index of the first entry without `=`.
fn key_values(text: &str) -> Result<Vec<(String, String)>, usize> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .map(|(index, entry)| {
            let (key, value) = entry.split_once('=').ok_or(index)?;
            let key = key.trim();
            if key.is_empty() {
                return Err(index);
            }
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8_lossy()
                .into_owned();
            Ok((key.to_owned(), value))
        })
        .collect()
}

/// The `ExportTraceServiceRequest` for `trace`, in OTLP's JSON encoding.
pub fn body(trace: &Trace) -> Json {
    let spans: Vec<Json> = trace
        .spans
        .iter()
        .map(|span| {
            let (code, message) = match &span.status {
                SpanStatus::Unset => (STATUS_UNSET, ""),
                SpanStatus::Ok => (STATUS_OK, ""),
                SpanStatus::Error(message) => (STATUS_ERROR, message.as_str()),
            };
            let mut encoded = json!({
                "traceId": hex::encode(span.trace_id),
                "spanId": hex::encode(span.span_id),
                "name": span.name,
                "kind": SPAN_KIND_INTERNAL,
                "startTimeUnixNano": unix_nanos(span.start),
                "endTimeUnixNano": unix_nanos(span.end),
                "attributes": attributes(&span.attributes),
                "status": {"code": code, "message": message},
            });
            if let Some(parent) = span.parent {
                encoded["parentSpanId"] = json!(hex::encode(parent));
            }
            encoded
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": attributes(&trace.resource)},
            "scopeSpans": [{
                "scope": {"name": "agent-orch", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans,
            }],
        }],
    })
}

fn attributes(attributes: &[Attribute]) -> Vec<Json> {
    attributes
        .iter()
        .map(|attribute| {
            let value = match &attribute.value {
                Value::String(text) => json!({"stringValue": text}),
                // int64 is a string in the JSON mapping of protobuf.
                Value::Int(number) => json!({"intValue": number.to_string()}),
                Value::Bool(flag) => json!({"boolValue": flag}),
            };
            json!({"key": attribute.key, "value": value})
        })
        .collect()
}

fn unix_nanos(at: SystemTime) -> String {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::telemetry::Span;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn exporter(vars: &[(&str, &str)]) -> Result<Option<OtlpExporter>, String> {
        OtlpExporter::from_env(&env(vars))
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_traces_endpoint_is_used_as_is() {
        for (base, expected) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                "https://otlp.example/api/",
                "https://otlp.example/api/v1/traces",
            ),
        ] {
            let otlp = exporter(&[("OTEL_EXPORTER_OTLP_ENDPOINT", base)])
                .unwrap()
                .unwrap();
            assert_eq!(otlp.url.as_str(), expected);
        }
        let otlp = exporter(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector/custom",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(otlp.url.as_str(), "http://collector/custom");
        assert!(exporter(&[]).unwrap().is_none());
        assert!(
            exporter(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_TRACES_EXPORTER", "none"),
            ])
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn headers_are_decoded_and_the_traces_ones_win() {
        let otlp = exporter(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-ignored=1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "Authorization=Bearer%20t0ken , x-scope=team-a",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            otlp.header_values().collect::<Vec<_>>(),
            ["Bearer t0ken", "team-a"]
        );
        assert!(!format!("{otlp:?}").contains("t0ken"));
    }

    #[test]
    fn bad_settings_are_warnings_that_name_the_variable_and_not_the_value() {
        for (vars, expected) in [
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT is not an http(s) URL",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr3t-value,oops"),
                ],
                "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not name=value",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "bad name=s3cr3t-value"),
                ],
                "OTEL_EXPORTER_OTLP_HEADERS: header 1 is not a valid HTTP header",
            ),
        ] {
            let warning = exporter(&vars).unwrap_err();
            assert!(warning.starts_with(expected), "{warning}");
            assert!(!warning.contains("s3cr3t"), "{warning}");
        }
        assert!(
            exporter(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ])
            .is_ok()
        );
    }

    #[test]
    fn timeout_and_resource_come_from_their_variables() {
        assert_eq!(
            timeout_from_env(&env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "1500")])),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert!(timeout_from_env(&env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")])).is_err());
        let resource = resource_from_env(&env(&[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=x,team=pay%20ments",
            ),
            ("OTEL_SERVICE_NAME", "deployer"),
        ]))
        .unwrap();
        let pairs: Vec<(String, String)> = resource
            .iter()
            .map(|attribute| (attribute.key.clone(), attribute.value.to_text()))
            .collect();
        assert_eq!(
            pairs[..2],
            [
                ("service.name".to_owned(), "deployer".to_owned()),
                ("team".to_owned(), "pay ments".to_owned())
            ]
        );
        let default = resource_from_env(&env(&[])).unwrap();
        assert_eq!(default[0], Attribute::string("service.name", SERVICE_NAME));
    }

    #[test]
    fn the_body_uses_otlp_json_conventions() {
        let start = UNIX_EPOCH + Duration::from_nanos(1_795_000_000_123_456_789);
        let trace = Trace {
            resource: vec![Attribute::string("service.name", "agent-orch")],
            spans: vec![Span {
                trace_id: [0xab; 16],
                span_id: [0x01; 8],
                parent: Some([0x02; 8]),
                name: "step build".to_owned(),
                start,
                end: start + Duration::from_millis(2),
                status: SpanStatus::Error("exit code 2".to_owned()),
                attributes: vec![
                    Attribute::int("agent_orch.iteration", 2),
                    Attribute::bool("agent_orch.step.required", true),
                ],
            }],
        };
        let body = body(&trace);
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "abababababababababababababababab");
        assert_eq!(span["spanId"], "0101010101010101");
        assert_eq!(span["parentSpanId"], "0202020202020202");
        assert_eq!(span["startTimeUnixNano"], "1795000000123456789");
        assert_eq!(span["endTimeUnixNano"], "1795000000125456789");
        assert_eq!(span["kind"], 1);
        assert_eq!(span["status"], json!({"code": 2, "message": "exit code 2"}));
        assert_eq!(
            span["attributes"],
            json!([
                {"key": "agent_orch.iteration", "value": {"intValue": "2"}},
                {"key": "agent_orch.step.required", "value": {"boolValue": true}},
            ])
        );
        assert_eq!(
            body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "agent-orch"
        );
    }
}
