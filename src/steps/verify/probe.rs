//! One probe: render a request's templates, send it, judge the response.
//! Shared by HTTP checks (one probe per measurement) and flows (one per request).

use indexmap::IndexMap;

use super::analysis::{
    ConditionEvaluator, Judgement, RenderedExpectations, Verdict, excerpt, judge,
};
use super::attempt_log::AttemptLog;
use super::response::{RenderedBody, RenderedRequest, ResponseSnapshot, send};
use crate::redact::{Redactor, is_secret_name};
use crate::workflow::span::Spanned;
use crate::workflow::step_config::verify::RequestSpec;
use crate::workflow::template::{Renderer, Template};

/// How much of a response body goes into the step log per probe.
const LOG_BODY_BYTES: usize = 300;

/// The clients a probe may use: redirects followed or not, per request.
pub(crate) struct Clients {
    pub(crate) following: reqwest::Client,
    pub(crate) not_following: reqwest::Client,
}

impl Clients {
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        Ok(Self {
            following: crate::http::http_client()?,
            not_following: crate::http::http_client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        })
    }
}

/// What a probe did and found.
#[derive(Debug)]
pub(crate) struct ProbeResult {
    pub(crate) judgement: Judgement,
    /// `GET http://...`, or `GET <url template>` when the url did not render.
    pub(crate) request_line: String,
    pub(crate) response: Option<ResponseSnapshot>,
}

/// Everything a probe needs besides the request itself.
pub(crate) struct ProbeContext<'a> {
    pub(crate) clients: &'a Clients,
    pub(crate) renderer: &'a Renderer,
    pub(crate) conditions: &'a ConditionEvaluator,
    /// Extra template values: `flow` in a flow, nothing in an HTTP check.
    pub(crate) scope: &'a [(&'a str, minijinja::Value)],
}

pub(crate) async fn probe(
    spec: &RequestSpec<'_>,
    cx: &ProbeContext<'_>,
    redactor: &mut Redactor,
) -> ProbeResult {
    let method = spec.method.as_str();
    let (request, body_contains, expect_json) = match render(spec, cx, redactor) {
        Ok(rendered) => rendered,
        Err(reason) => {
            return ProbeResult {
                judgement: Judgement::new(Verdict::Unrunnable, reason),
                request_line: format!("{method} {}", spec.url.source()),
                response: None,
            };
        }
    };
    let request_line = format!("{method} {}", request.url);
    let client = if spec.follow_redirects {
        &cx.clients.following
    } else {
        &cx.clients.not_following
    };
    let response = match send(client, &request).await {
        Ok(response) => response,
        Err(reason) => {
            return ProbeResult {
                judgement: Judgement::new(Verdict::Error, reason),
                request_line,
                response: None,
            };
        }
    };
    let expectations = RenderedExpectations {
        status: spec.expect.status,
        body_contains: body_contains.as_deref(),
        json: &expect_json,
        max_latency: spec.expect.max_latency,
        success_condition: spec.expect.success_condition,
        failure_condition: spec.expect.failure_condition,
    };
    let scope = minijinja::Value::from_object(
        cx.scope
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .chain([("response".to_owned(), response.condition_value())])
            .collect::<std::collections::BTreeMap<String, minijinja::Value>>(),
    );
    let judgement = judge(&response, &expectations, cx.conditions, &scope);
    ProbeResult {
        judgement,
        request_line,
        response: Some(response),
    }
}

/// The request, `expect_body_contains` and `expect_json`, rendered.
type Rendered = (
    RenderedRequest,
    Option<String>,
    IndexMap<String, serde_json::Value>,
);

fn render(
    spec: &RequestSpec<'_>,
    cx: &ProbeContext<'_>,
    redactor: &mut Redactor,
) -> Result<Rendered, String> {
    let render = |what: &str, template: &Template| {
        cx.renderer
            .render_with(template, cx.scope)
            .map_err(|err| format!("failed to render {what} `{}`: {err}", template.source()))
    };
    let url_text = render("url", spec.url)?;
    let url = reqwest::Url::parse(url_text.trim())
        .map_err(|err| format!("invalid url `{url_text}`: {err}"))?;
    let mut headers = Vec::with_capacity(spec.headers.len());
    for (name, template) in spec.headers {
        let value = render(&format!("header `{name}`"), template)?;
        if is_secret_name(name) {
            redactor.add_secret(&value);
            // `Bearer <token>`: the token alone may show up elsewhere too.
            if let Some((_, credential)) = value.trim().rsplit_once(' ') {
                redactor.add_secret(credential);
            }
        }
        headers.push((name.clone(), value));
    }
    let body = match (spec.body, spec.json) {
        (Some(body), _) => Some(RenderedBody::Text(render("body", body)?)),
        (None, Some(json)) => Some(RenderedBody::Json(render_json(json, &render)?)),
        (None, None) => None,
    };
    let body_contains = spec
        .expect
        .body_contains
        .map(|template| render("expect_body_contains", template))
        .transpose()?;
    // Expected values may come from earlier steps: `/version: "{{ steps.build.outputs.version }}"`.
    let expect_json = spec
        .expect
        .json
        .iter()
        .map(|(pointer, expected)| Ok((pointer.clone(), render_json(expected, &render)?)))
        .collect::<Result<IndexMap<_, _>, String>>()?;
    let request = RenderedRequest {
        method: spec.method,
        url,
        headers,
        body,
        timeout: spec.timeout,
    };
    Ok((request, body_contains, expect_json))
}

/// Renders every string in a JSON body as a template; keys and other values stay as written.
fn render_json(
    value: &serde_json::Value,
    render: &impl Fn(&str, &Template) -> Result<String, String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(text) => Value::String(render(
            "json body",
            &Template(Spanned::detached(text.clone())),
        )?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_json(item, render))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, item)| Ok((key.clone(), render_json(item, render)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

impl ProbeResult {
    /// Logs the probe: a summary line (echoed), then the body excerpt (file only).
    pub(crate) async fn log(
        &self,
        log: &mut AttemptLog,
        prefix: &str,
        judgement: &Judgement,
        redactor: &Redactor,
    ) {
        let verdict = judgement.verdict.log_word();
        let line = match &self.response {
            Some(response) => format!(
                "{prefix}: {}: {verdict}: {}",
                response.summary(),
                judgement.reason
            ),
            None => format!(
                "{prefix}: {}: {verdict}: {}",
                self.request_line, judgement.reason
            ),
        };
        log.line(&redactor.redact(&line)).await;
        if let Some(response) = &self.response
            && !response.body.is_empty()
        {
            let body = excerpt(&response.body, LOG_BODY_BYTES)
                .escape_debug()
                .to_string();
            log.detail(&redactor.redact(&format!("    body: {body}")))
                .await;
        }
    }

    /// The response, or why there was none, for the fix step.
    pub(crate) fn evidence(&self, redactor: &Redactor) -> String {
        match &self.response {
            Some(response) => response.evidence(redactor),
            None => redactor
                .redact(&format!(
                    "{}\nno response: {}",
                    self.request_line, self.judgement.reason
                ))
                .into_owned(),
        }
    }

    /// `status` and `latency_ms`, when there was a response.
    pub(crate) fn outputs(&self) -> IndexMap<String, String> {
        let mut outputs = IndexMap::new();
        if let Some(response) = &self.response {
            outputs.insert("status".to_owned(), response.status.to_string());
            outputs.insert(
                "latency_ms".to_owned(),
                response.latency.as_millis().to_string(),
            );
        }
        outputs
    }
}
