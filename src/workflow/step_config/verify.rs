//! What a `verify` step accepts: an HTTP check, a flow of requests, a smoke script, or a
//! metric query (`prometheus`, `log_analytics`; see [`crate::workflow::step_config::verify_metric`]).
//!
//! Keys that take "one of several shapes" (`expect_status: 200` or `[200, 204]`, a capture,
//! the verify kind itself) have hand-written visitors instead of `untagged`/`flatten`, so the
//! workflow loader can still point an error at the offending node.

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::verify_metric::{LogAnalyticsCheck, PrometheusCheck};
use crate::workflow::duration::DurationSpec;
use crate::workflow::span::Spanned;
use crate::workflow::step_config::gate::GateConfig;
use crate::workflow::template::{Template, rendered_strings};

/// Extra attempts are spaced by this much unless `interval` says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// One request (connect, send, read the body) may take this long unless `timeout` says otherwise.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `verify:` takes exactly one of `http`, `flow`, `script`, `prometheus` or `log_analytics`.
#[derive(Clone, Debug, JsonSchema)]
#[schemars(rename_all = "snake_case")]
pub enum VerifyConfig {
    /// One HTTP request, repeated until it succeeds or the limits say stop.
    Http(Box<HttpCheck>),
    /// A sequence of requests where values captured from one response feed the next.
    Flow(FlowCheck),
    /// A smoke-test command: `script: ./scripts/smoke.sh` or `{run, workdir, env}`.
    Script(GateConfig),
    /// A PromQL query against a Prometheus HTTP API, judged by its value.
    Prometheus(Box<PrometheusCheck>),
    /// A KQL query against a Log Analytics workspace (Application Insights), judged by its value.
    LogAnalytics(Box<LogAnalyticsCheck>),
}

impl<'de> Deserialize<'de> for VerifyConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(VerifyConfigVisitor)
    }
}

const VERIFY_KINDS: &[&str] = &["http", "flow", "script", "prometheus", "log_analytics"];

struct VerifyConfigVisitor;

impl<'de> Visitor<'de> for VerifyConfigVisitor {
    type Value = VerifyConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with one of `http`, `flow`, `script`, `prometheus` or `log_analytics`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VerifyConfig, A::Error> {
        let mut config: Option<(String, VerifyConfig)> = None;
        while let Some(key) = map.next_key::<String>()? {
            let value = match key.as_str() {
                "http" => {
                    let check: Box<HttpCheck> = map.next_value()?;
                    check.request().check().map_err(de::Error::custom)?;
                    VerifyConfig::Http(check)
                }
                "flow" => {
                    let flow: FlowCheck = map.next_value()?;
                    flow.check().map_err(de::Error::custom)?;
                    VerifyConfig::Flow(flow)
                }
                "script" => VerifyConfig::Script(map.next_value()?),
                "prometheus" => {
                    let check: Box<PrometheusCheck> = map.next_value()?;
                    check.check().map_err(de::Error::custom)?;
                    VerifyConfig::Prometheus(check)
                }
                "log_analytics" => {
                    let check: Box<LogAnalyticsCheck> = map.next_value()?;
                    check.check().map_err(de::Error::custom)?;
                    VerifyConfig::LogAnalytics(check)
                }
                _ => return Err(de::Error::unknown_field(&key, VERIFY_KINDS)),
            };
            if let Some((first, _)) = &config {
                return Err(de::Error::custom(format!(
                    "verify takes exactly one of `http`, `flow`, `script`, `prometheus` or `log_analytics`, got `{first}` and `{key}`"
                )));
            }
            config = Some((key, value));
        }
        config.map(|(_, config)| config).ok_or_else(|| {
            de::Error::custom(
                "verify needs one of `http`, `flow`, `script`, `prometheus` or `log_analytics`",
            )
        })
    }
}

/// `verify: {http: {...}}`: one request, its expectations, and how often to try it.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: Template,
    #[serde(default)]
    pub method: HttpMethod,
    #[serde(default)]
    pub headers: IndexMap<String, Template>,
    /// A text body. Exclusive with `json`.
    #[serde(default)]
    pub body: Option<Template>,
    /// A JSON body; its strings are templates. Exclusive with `body`.
    #[serde(default, deserialize_with = "rendered_strings")]
    pub json: Option<serde_json::Value>,
    /// Follow redirects (default); turn off to check or capture a `Location` header.
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    /// One request's time limit, connecting to the last byte of the body (default 10s).
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// A status or a list of statuses (default: any 2xx, unless a `success_condition` is set).
    #[serde(default)]
    pub expect_status: Option<ExpectStatus>,
    #[serde(default)]
    pub expect_body_contains: Option<Template>,
    /// JSON pointer (`/status`, `/checks/0/ok`) -> the value the response must hold there;
    /// its strings are templates.
    #[serde(default, deserialize_with = "rendered_strings")]
    pub expect_json: IndexMap<String, serde_json::Value>,
    /// The whole exchange (connect to last body byte) must take no longer than this.
    #[serde(default)]
    pub max_latency: Option<DurationSpec>,
    /// A minijinja expression over `response`; the measurement succeeds when it holds.
    #[serde(default)]
    pub success_condition: Option<Condition>,
    /// A minijinja expression over `response`; the measurement fails when it holds.
    #[serde(default)]
    pub failure_condition: Option<Condition>,
    /// Extra attempts after the first (default 0).
    #[serde(default)]
    pub retries: u32,
    /// Time between the end of one attempt and the start of the next (default 1s).
    #[serde(default)]
    pub interval: Option<DurationSpec>,
    /// Stop with a failure once more than this many failures happen in a row.
    #[serde(default)]
    pub consecutive_failure_limit: Option<u32>,
    /// Stop as inconclusive once more than this many measurements are inconclusive.
    #[serde(default)]
    pub inconclusive_limit: Option<u32>,
}

/// `verify: {flow: {requests: [...]}}`: one measurement runs every request in order.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowCheck {
    pub requests: Vec<FlowRequest>,
    /// Extra runs of the whole flow after the first (default 0).
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub interval: Option<DurationSpec>,
    #[serde(default)]
    pub consecutive_failure_limit: Option<u32>,
    #[serde(default)]
    pub inconclusive_limit: Option<u32>,
}

/// One request of a flow: the same request and expectation keys as an HTTP check, plus a
/// name and the values to capture for later requests (`{{ flow.<var> }}`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRequest {
    pub name: Spanned<String>,
    pub url: Template,
    #[serde(default)]
    pub method: HttpMethod,
    #[serde(default)]
    pub headers: IndexMap<String, Template>,
    #[serde(default)]
    pub body: Option<Template>,
    #[serde(default, deserialize_with = "rendered_strings")]
    pub json: Option<serde_json::Value>,
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    #[serde(default)]
    pub expect_status: Option<ExpectStatus>,
    #[serde(default)]
    pub expect_body_contains: Option<Template>,
    #[serde(default, deserialize_with = "rendered_strings")]
    pub expect_json: IndexMap<String, serde_json::Value>,
    #[serde(default)]
    pub max_latency: Option<DurationSpec>,
    #[serde(default)]
    pub success_condition: Option<Condition>,
    #[serde(default)]
    pub failure_condition: Option<Condition>,
    /// Variable name -> where to take its value from in this request's response.
    #[serde(default)]
    pub capture: IndexMap<String, Capture>,
}

fn default_true() -> bool {
    true
}

impl FlowCheck {
    fn check(&self) -> Result<(), String> {
        if self.requests.is_empty() {
            return Err("a flow needs at least one request".to_owned());
        }
        let mut names: Vec<&str> = Vec::new();
        let mut captured: Vec<&str> = Vec::new();
        for (index, request) in self.requests.iter().enumerate() {
            let label = format!("flow request {} \"{}\"", index + 1, request.name.value);
            if names.contains(&request.name.value.as_str()) {
                return Err(format!("{label}: the name is used by an earlier request"));
            }
            names.push(&request.name.value);
            request
                .request()
                .check()
                .map_err(|err| format!("{label}: {err}"))?;
            for (var, capture) in &request.capture {
                if !is_identifier(var) {
                    return Err(format!(
                        "{label}: capture name `{var}` must be letters, digits and `_`, not starting with a digit"
                    ));
                }
                if captured.contains(&var.as_str()) {
                    return Err(format!(
                        "{label}: `{var}` is already captured by an earlier request"
                    ));
                }
                captured.push(var);
                if let Capture::Json(pointer) = capture {
                    check_pointer(pointer)
                        .map_err(|err| format!("{label}: capture `{var}`: {err}"))?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn policy(&self) -> MeasurementPolicy {
        MeasurementPolicy::new(
            self.retries,
            self.interval,
            self.consecutive_failure_limit,
            self.inconclusive_limit,
        )
    }
}

impl HttpCheck {
    pub(crate) fn request(&self) -> RequestSpec<'_> {
        RequestSpec {
            method: self.method,
            url: &self.url,
            headers: &self.headers,
            body: self.body.as_ref(),
            json: self.json.as_ref(),
            follow_redirects: self.follow_redirects,
            timeout: self.timeout.map_or(DEFAULT_REQUEST_TIMEOUT, |t| t.0),
            expect: Expectations {
                status: self.expect_status.as_ref(),
                body_contains: self.expect_body_contains.as_ref(),
                json: &self.expect_json,
                max_latency: self.max_latency.map(|t| t.0),
                success_condition: self.success_condition.as_ref(),
                failure_condition: self.failure_condition.as_ref(),
            },
        }
    }

    pub(crate) fn policy(&self) -> MeasurementPolicy {
        MeasurementPolicy::new(
            self.retries,
            self.interval,
            self.consecutive_failure_limit,
            self.inconclusive_limit,
        )
    }
}

impl FlowRequest {
    pub(crate) fn request(&self) -> RequestSpec<'_> {
        RequestSpec {
            method: self.method,
            url: &self.url,
            headers: &self.headers,
            body: self.body.as_ref(),
            json: self.json.as_ref(),
            follow_redirects: self.follow_redirects,
            timeout: self.timeout.map_or(DEFAULT_REQUEST_TIMEOUT, |t| t.0),
            expect: Expectations {
                status: self.expect_status.as_ref(),
                body_contains: self.expect_body_contains.as_ref(),
                json: &self.expect_json,
                max_latency: self.max_latency.map(|t| t.0),
                success_condition: self.success_condition.as_ref(),
                failure_condition: self.failure_condition.as_ref(),
            },
        }
    }
}

/// A request and its expectations, as shared by an HTTP check and a flow request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestSpec<'a> {
    pub(crate) method: HttpMethod,
    pub(crate) url: &'a Template,
    pub(crate) headers: &'a IndexMap<String, Template>,
    pub(crate) body: Option<&'a Template>,
    pub(crate) json: Option<&'a serde_json::Value>,
    pub(crate) follow_redirects: bool,
    pub(crate) timeout: Duration,
    pub(crate) expect: Expectations<'a>,
}

impl RequestSpec<'_> {
    fn check(&self) -> Result<(), String> {
        if self.body.is_some() && self.json.is_some() {
            return Err("`body` and `json` cannot both be set".to_owned());
        }
        for pointer in self.expect.json.keys() {
            check_pointer(pointer).map_err(|err| format!("expect_json: {err}"))?;
        }
        Ok(())
    }
}

/// What a response must look like for a measurement to succeed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expectations<'a> {
    pub(crate) status: Option<&'a ExpectStatus>,
    pub(crate) body_contains: Option<&'a Template>,
    pub(crate) json: &'a IndexMap<String, serde_json::Value>,
    pub(crate) max_latency: Option<Duration>,
    pub(crate) success_condition: Option<&'a Condition>,
    pub(crate) failure_condition: Option<&'a Condition>,
}

/// How many measurements to take and when to stop early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MeasurementPolicy {
    pub(crate) attempts: u32,
    pub(crate) interval: Duration,
    pub(crate) consecutive_failure_limit: Option<u32>,
    pub(crate) inconclusive_limit: Option<u32>,
    /// Measure for this long instead of until the first success (metric checks' `soak`).
    pub(crate) soak: Option<Duration>,
}

impl MeasurementPolicy {
    fn new(
        retries: u32,
        interval: Option<DurationSpec>,
        consecutive_failure_limit: Option<u32>,
        inconclusive_limit: Option<u32>,
    ) -> Self {
        Self {
            attempts: retries.saturating_add(1),
            interval: interval.map_or(DEFAULT_INTERVAL, |i| i.0),
            consecutive_failure_limit,
            inconclusive_limit,
            soak: None,
        }
    }
}

fn check_pointer(pointer: &str) -> Result<(), String> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "`{pointer}` is not a JSON pointer (write `/{pointer}`; `/a/0/b` for nested values)"
        ))
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The request method, written in capitals as in HTTP itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl HttpMethod {
    const NAMES: &'static [&'static str] =
        &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
        }
    }
}

impl<'de> Deserialize<'de> for HttpMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(match name.as_str() {
            "GET" => HttpMethod::Get,
            "HEAD" => HttpMethod::Head,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            "DELETE" => HttpMethod::Delete,
            "OPTIONS" => HttpMethod::Options,
            _ => return Err(de::Error::unknown_variant(&name, Self::NAMES)),
        })
    }
}

/// `expect_status: 200` or `expect_status: [200, 204]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectStatus(pub Vec<u16>);

impl<'de> Deserialize<'de> for ExpectStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ExpectStatusVisitor)
    }
}

struct ExpectStatusVisitor;

impl ExpectStatusVisitor {
    fn code<E: de::Error>(value: u64) -> Result<u16, E> {
        u16::try_from(value)
            .ok()
            .filter(|code| (100..=599).contains(code))
            .ok_or_else(|| E::custom(format!("`{value}` is not an http status (100 to 599)")))
    }
}

impl<'de> Visitor<'de> for ExpectStatusVisitor {
    type Value = ExpectStatus;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an http status such as 200, or a list of them")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ExpectStatus, E> {
        Ok(ExpectStatus(vec![Self::code(value)?]))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ExpectStatus, E> {
        let value = u64::try_from(value)
            .map_err(|_| E::custom(format!("`{value}` is not an http status (100 to 599)")))?;
        self.visit_u64(value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ExpectStatus, A::Error> {
        let mut codes = Vec::new();
        while let Some(code) = seq.next_element::<u64>()? {
            codes.push(Self::code(code)?);
        }
        if codes.is_empty() {
            return Err(de::Error::custom(
                "`expect_status` needs at least one status",
            ));
        }
        Ok(ExpectStatus(codes))
    }
}

impl JsonSchema for ExpectStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ExpectStatus".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An HTTP status, or a list of statuses any of which passes.",
            "oneOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "integer", "minimum": 100, "maximum": 599}
                }
            ]
        })
    }
}

/// A minijinja expression over `response` (and `flow` in a flow), checked when it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition(pub Spanned<String>);

impl Condition {
    pub fn source(&self) -> &str {
        &self.0.value
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = Spanned::<String>::deserialize(deserializer)?;
        minijinja::Environment::new()
            .compile_expression(&source.value)
            .map_err(|err| {
                de::Error::custom(format!(
                    "invalid condition `{}`: {}",
                    source.value,
                    err.detail().unwrap_or("syntax error")
                ))
            })?;
        Ok(Condition(source))
    }
}

impl JsonSchema for Condition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Condition".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A minijinja expression over `response` (status, headers, body, json, latency_ms), e.g. `response.json.ready == true`; in a metric check over `result` (and `series`, `baseline`), e.g. `result < 0.01`."
        })
    }
}

/// Where a flow request takes a captured value from: `{json: "/token"}`,
/// `{header: "Location"}` or `{regex: "token=(\\w+)"}` (the first group, else the whole match).
#[derive(Clone, Debug)]
pub enum Capture {
    Json(String),
    Header(String),
    Regex(regex::Regex),
}

const CAPTURE_SOURCES: &[&str] = &["json", "header", "regex"];

impl<'de> Deserialize<'de> for Capture {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CaptureVisitor)
    }
}

struct CaptureVisitor;

impl<'de> Visitor<'de> for CaptureVisitor {
    type Value = Capture;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with one of `json`, `header` or `regex`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Capture, A::Error> {
        let Some(source) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "a capture needs one of `json`, `header` or `regex`",
            ));
        };
        let capture = match source.as_str() {
            "json" => Capture::Json(map.next_value()?),
            "header" => Capture::Header(map.next_value()?),
            "regex" => {
                let pattern: String = map.next_value()?;
                let regex = regex::Regex::new(&pattern).map_err(|err| {
                    de::Error::custom(format!("invalid regex `{pattern}`: {err}"))
                })?;
                Capture::Regex(regex)
            }
            _ => return Err(de::Error::unknown_field(&source, CAPTURE_SOURCES)),
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "a capture takes exactly one of `json`, `header` or `regex`, got `{source}` and `{extra}`"
            )));
        }
        Ok(capture)
    }
}

impl JsonSchema for Capture {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Capture".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Where to take a captured value from in the response.",
            "oneOf": [
                {"type": "object", "required": ["json"], "additionalProperties": false,
                 "properties": {"json": {"type": "string", "description": "A JSON pointer such as `/token`."}}},
                {"type": "object", "required": ["header"], "additionalProperties": false,
                 "properties": {"header": {"type": "string"}}},
                {"type": "object", "required": ["regex"], "additionalProperties": false,
                 "properties": {"regex": {"type": "string", "description": "The first group, else the whole match, is captured."}}}
            ]
        })
    }
}

/// Whether `step` is a metric check that compares with a baseline.
pub fn needs_baseline(step: &crate::workflow::model::Step) -> bool {
    use crate::workflow::model::StepKind;
    match &step.kind {
        StepKind::Verify(VerifyConfig::Prometheus(check)) => check.baseline.is_some(),
        StepKind::Verify(VerifyConfig::LogAnalytics(check)) => check.baseline.is_some(),
        _ => false,
    }
}
