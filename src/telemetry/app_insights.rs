//! Azure Application Insights: the trace as telemetry items posted to the ingestion endpoint's
//! track API, `POST <IngestionEndpoint>/v2.1/track` with a JSON array of envelopes.
//!
//! - The connection string (learn.microsoft.com, "Connection strings in Application
//!   Insights"): `key=value` pairs separated by `;`, keys case-insensitive;
//!   `InstrumentationKey` is required; `IngestionEndpoint` overrides the endpoint, else
//!   `EndpointSuffix` (with an optional `Location` prefix) builds `https://dc.<suffix>`, else
//!   the global `https://dc.services.visualstudio.com`.
//! - The envelope (learn.microsoft.com, "Troubleshoot missing application telemetry", which
//!   posts `RequestData` by hand; "Application Insights telemetry data model"): `name`,
//!   `time`, `iKey`, `tags`, `data: {baseType, baseData: {ver: 2, id, name, duration
//!   ("d.hh:mm:ss.fffffff"), success, ...}}`. Correlation follows the Azure Monitor
//!   OpenTelemetry exporters: `ai.operation.id` is the trace id, `ai.operation.parentId` the
//!   parent span id, `baseData.id` the span id; the root span (the run) is a request, the
//!   others in-process dependencies (`type: "InProc"`).
//! - The answer: `200` (or `206` for a partial success) with `{"itemsReceived",
//!   "itemsAccepted", "errors": [{"index", "statusCode", "message"}]}`.
//!
//! Entra ID-authenticated ingestion (`Authorization=AAD` in the connection string) is not
//! supported: such a resource answers 401 and the warning says so.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value as Json, json};

use super::{Span, SpanStatus, TelemetryError, Trace, Value, http_failure};

pub const CONNECTION_STRING_ENV: &str = "APPLICATIONINSIGHTS_CONNECTION_STRING";

const DEFAULT_INGESTION_ENDPOINT: &str = "https://dc.services.visualstudio.com";

/// What a property value may hold; the service truncates longer ones.
const MAX_PROPERTY_LEN: usize = 8192;

/// The attributes that hold a span's result in words, read for `responseCode`/`resultCode`.
const RESULT_ATTRIBUTES: [&str; 2] = ["agent_orch.run.outcome", "agent_orch.step.status"];

#[derive(Debug)]
pub struct AppInsightsExporter {
    instrumentation_key: String,
    track_url: reqwest::Url,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("part {0} is not key=value")]
    NotKeyValue(usize),
    #[error("it has no InstrumentationKey")]
    NoInstrumentationKey,
    #[error("its {0} is not an http(s) URL")]
    NotAUrl(&'static str),
}

impl AppInsightsExporter {
    pub fn from_connection_string(text: &str) -> Result<Self, ConnectionStringError> {
        let mut key = None;
        let mut ingestion = None;
        let mut suffix = None;
        let mut location = None;
        for (index, part) in text
            .split(';')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .enumerate()
        {
            let (name, value) = part
                .split_once('=')
                .ok_or(ConnectionStringError::NotKeyValue(index + 1))?;
            let value = value.trim().to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "instrumentationkey" => key = Some(value),
                "ingestionendpoint" => ingestion = Some(value),
                "endpointsuffix" => suffix = Some(value),
                "location" => location = Some(value),
                _ => {}
            }
        }
        let instrumentation_key = key
            .filter(|key| !key.is_empty())
            .ok_or(ConnectionStringError::NoInstrumentationKey)?;
        let (setting, endpoint) = match (ingestion, suffix) {
            (Some(endpoint), _) => ("IngestionEndpoint", endpoint),
            (None, Some(suffix)) => {
                let prefix = location.map(|l| format!("{l}.")).unwrap_or_default();
                ("EndpointSuffix", format!("https://{prefix}dc.{suffix}"))
            }
            (None, None) => ("IngestionEndpoint", DEFAULT_INGESTION_ENDPOINT.to_owned()),
        };
        let track_url =
            reqwest::Url::parse(&format!("{}/v2.1/track", endpoint.trim_end_matches('/')))
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .ok_or(ConnectionStringError::NotAUrl(setting))?;
        Ok(Self {
            instrumentation_key,
            track_url,
        })
    }

    pub fn instrumentation_key(&self) -> &str {
        &self.instrumentation_key
    }

    pub async fn send(
        &self,
        client: &reqwest::Client,
        trace: &Trace,
    ) -> Result<(), TelemetryError> {
        let fail = |reason: String| TelemetryError {
            destination: "Application Insights",
            reason,
        };
        let items = envelopes(trace, &self.instrumentation_key);
        let sent = client
            .post(self.track_url.clone())
            .json(&items)
            .send()
            .await;
        let answer = http_failure(sent).await.map_err(|reason| {
            if reason.starts_with("401") || reason.starts_with("403") {
                fail(format!(
                    "{reason} (Entra ID-authenticated ingestion is not supported: allow local \
                     authentication on the resource)"
                ))
            } else {
                fail(reason)
            }
        })?;
        let answer: Json = serde_json::from_str(&answer).unwrap_or(Json::Null);
        let accepted = answer["itemsAccepted"].as_u64();
        let received = answer["itemsReceived"].as_u64();
        if accepted.is_some() && accepted != received {
            let first = answer["errors"][0]["message"].as_str().unwrap_or_default();
            return Err(fail(format!(
                "{} of {} item(s) accepted: {first}",
                accepted.unwrap_or(0),
                received.unwrap_or(0)
            )));
        }
        Ok(())
    }
}

/// One envelope per span, in the trace's order (the run first).
pub fn envelopes(trace: &Trace, instrumentation_key: &str) -> Json {
    let role = trace
        .resource
        .iter()
        .find(|attribute| attribute.key == "service.name")
        .map(|attribute| attribute.value.to_text())
        .unwrap_or_default();
    let operation = trace
        .root()
        .map(|root| root.name.clone())
        .unwrap_or_default();
    trace
        .spans
        .iter()
        .enumerate()
        .map(|(index, span)| {
            let mut tags = Map::new();
            tags.insert("ai.operation.id".into(), json!(hex::encode(span.trace_id)));
            if let Some(parent) = span.parent {
                tags.insert("ai.operation.parentId".into(), json!(hex::encode(parent)));
            }
            tags.insert("ai.operation.name".into(), json!(operation));
            tags.insert("ai.cloud.role".into(), json!(role));
            tags.insert(
                "ai.internal.sdkVersion".into(),
                json!(concat!("agent-orch:", env!("CARGO_PKG_VERSION"))),
            );
            let is_request = index == 0;
            let mut data = json!({
                "ver": 2,
                "id": hex::encode(span.span_id),
                "name": span.name,
                "duration": duration(span.end.duration_since(span.start).unwrap_or_default()),
                "success": !matches!(span.status, SpanStatus::Error(_)),
                "properties": properties(span),
                "measurements": measurements(span),
            });
            let result = result_code(span);
            let (name, base_type) = if is_request {
                data["responseCode"] = json!(result);
                ("Microsoft.ApplicationInsights.Request", "RequestData")
            } else {
                data["resultCode"] = json!(result);
                data["type"] = json!("InProc");
                (
                    "Microsoft.ApplicationInsights.RemoteDependency",
                    "RemoteDependencyData",
                )
            };
            json!({
                "name": name,
                "time": time(span.start),
                "iKey": instrumentation_key,
                "tags": tags,
                "data": {"baseType": base_type, "baseData": data},
            })
        })
        .collect()
}

fn result_code(span: &Span) -> String {
    RESULT_ATTRIBUTES
        .iter()
        .find_map(|key| span.attribute(key).map(Value::to_text))
        .unwrap_or_else(|| {
            match span.status {
                SpanStatus::Error(_) => "failed",
                SpanStatus::Ok => "passed",
                SpanStatus::Unset => "",
            }
            .to_owned()
        })
}

fn properties(span: &Span) -> Map<String, Json> {
    let mut properties: Map<String, Json> = span
        .attributes
        .iter()
        .map(|attribute| {
            let text: String = attribute
                .value
                .to_text()
                .chars()
                .take(MAX_PROPERTY_LEN)
                .collect();
            (attribute.key.clone(), json!(text))
        })
        .collect();
    if let SpanStatus::Error(message) = &span.status {
        properties.insert("error.message".into(), json!(message));
    }
    properties
}

/// Token counts, as numbers a chart can sum.
fn measurements(span: &Span) -> Map<String, Json> {
    span.attributes
        .iter()
        .filter(|attribute| attribute.key.starts_with("agent_orch.tokens."))
        .filter_map(|attribute| match attribute.value {
            Value::Int(count) => Some((attribute.key.clone(), json!(count))),
            Value::String(_) | Value::Bool(_) => None,
        })
        .collect()
}

/// `d.hh:mm:ss.fffffff`, the .NET TimeSpan text the service reads.
fn duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    format!(
        "{}.{:02}:{:02}:{:02}.{:07}",
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
        duration.subsec_nanos() / 100
    )
}

fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::telemetry::Attribute;

    const KEY: &str = "00000000-1111-2222-3333-444444444444";

    #[test]
    fn the_connection_string_gives_the_key_and_the_track_url() {
        for (text, url) in [
            (
                format!(
                    "InstrumentationKey={KEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/"
                ),
                "https://westeurope-5.in.applicationinsights.azure.com/v2.1/track",
            ),
            (
                format!("instrumentationkey = {KEY} ; EndpointSuffix=applicationinsights.azure.cn"),
                "https://dc.applicationinsights.azure.cn/v2.1/track",
            ),
            (
                format!(
                    "InstrumentationKey={KEY};EndpointSuffix=applicationinsights.us;Location=usgovvirginia"
                ),
                "https://usgovvirginia.dc.applicationinsights.us/v2.1/track",
            ),
            (
                format!("InstrumentationKey={KEY}"),
                "https://dc.services.visualstudio.com/v2.1/track",
            ),
        ] {
            let exporter = AppInsightsExporter::from_connection_string(&text).unwrap();
            assert_eq!(exporter.instrumentation_key(), KEY);
            assert_eq!(exporter.track_url.as_str(), url, "{text}");
        }
    }

    #[test]
    fn a_connection_string_without_what_it_needs_is_refused() {
        for (text, error) in [
            (
                "IngestionEndpoint=https://x/",
                ConnectionStringError::NoInstrumentationKey,
            ),
            (
                "InstrumentationKey=;",
                ConnectionStringError::NoInstrumentationKey,
            ),
            (
                "InstrumentationKey=k;junk",
                ConnectionStringError::NotKeyValue(2),
            ),
            (
                "InstrumentationKey=k;IngestionEndpoint=dc.example",
                ConnectionStringError::NotAUrl("IngestionEndpoint"),
            ),
        ] {
            assert_eq!(
                AppInsightsExporter::from_connection_string(text).unwrap_err(),
                error,
                "{text}"
            );
        }
    }

    #[test]
    fn durations_read_as_timespans() {
        assert_eq!(duration(Duration::from_millis(1234)), "0.00:00:01.2340000");
        assert_eq!(
            duration(Duration::from_secs(90_061) + Duration::from_nanos(500)),
            "1.01:01:01.0000005"
        );
    }

    #[test]
    fn the_run_is_a_request_and_the_rest_dependencies_of_one_operation() {
        let start = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let span = |id: u8, parent: Option<u8>, name: &str, status: SpanStatus| Span {
            trace_id: [0xab; 16],
            span_id: [id; 8],
            parent: parent.map(|p| [p; 8]),
            name: name.to_owned(),
            start,
            end: start + Duration::from_millis(1500),
            status,
            attributes: vec![Attribute::int("agent_orch.tokens.total", 42)],
        };
        let mut run = span(1, None, "run deploy", SpanStatus::Error("gave up".into()));
        run.attributes
            .push(Attribute::string("agent_orch.run.outcome", "failed"));
        let trace = Trace {
            resource: vec![Attribute::string("service.name", "deployer")],
            spans: vec![run, span(2, Some(1), "iteration 1", SpanStatus::Ok)],
        };
        let items = envelopes(&trace, KEY);
        let request = &items[0];
        assert_eq!(request["name"], "Microsoft.ApplicationInsights.Request");
        assert_eq!(request["iKey"], KEY);
        assert_eq!(request["time"], "2026-11-18T11:06:40.000000Z");
        assert_eq!(request["tags"]["ai.operation.id"], "ab".repeat(16));
        assert_eq!(request["tags"]["ai.cloud.role"], "deployer");
        assert!(request["tags"].get("ai.operation.parentId").is_none());
        let data = &request["data"];
        assert_eq!(data["baseType"], "RequestData");
        assert_eq!(data["baseData"]["id"], "01".repeat(8));
        assert_eq!(data["baseData"]["success"], false);
        assert_eq!(data["baseData"]["responseCode"], "failed");
        assert_eq!(data["baseData"]["duration"], "0.00:00:01.5000000");
        assert_eq!(data["baseData"]["properties"]["error.message"], "gave up");
        assert_eq!(
            data["baseData"]["measurements"]["agent_orch.tokens.total"],
            42
        );

        let dependency = &items[1];
        assert_eq!(
            dependency["name"],
            "Microsoft.ApplicationInsights.RemoteDependency"
        );
        assert_eq!(dependency["tags"]["ai.operation.id"], "ab".repeat(16));
        assert_eq!(dependency["tags"]["ai.operation.parentId"], "01".repeat(8));
        assert_eq!(dependency["tags"]["ai.operation.name"], "run deploy");
        let data = &dependency["data"]["baseData"];
        assert_eq!(dependency["data"]["baseType"], "RemoteDependencyData");
        assert_eq!(data["type"], "InProc");
        assert_eq!(data["success"], true);
        assert_eq!(data["resultCode"], "passed");
    }
}
