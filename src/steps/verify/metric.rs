//! `verify: {prometheus: ...}` and `verify: {log_analytics: ...}`: one query per measurement,
//! judged by its value (see [`super::metric_analysis`]); measured until the limits decide, or
//! over a `soak`; compared with the value measured before the deploy when `baseline` is set.

use std::time::Duration;

use indexmap::IndexMap;

use super::analysis::{ConditionEvaluator, Judgement, Verdict, excerpt};
use super::attempt_log::AttemptLog;
use super::measure::{Measurement, measure_until_decided};
use super::metric_analysis::{MetricExpectations, MetricResult, judge_metric, number};
use super::probe::Clients;
use super::response::{RenderedRequest, send};
use super::{log_analytics, prometheus, setup};
use crate::azure::monitor::{LOG_ANALYTICS_SCOPE, MonitorClient, PROMETHEUS_SCOPE};
use crate::redact::Redactor;
use crate::steps::{StepContext, StepOutcome};
use crate::workflow::step_config::verify::HttpMethod;
use crate::workflow::step_config::verify_metric::{MetricAuth, MetricSource, MetricSpec};

/// How much of an answer goes into the step log and the evidence.
const ANSWER_EXCERPT: usize = 600;

pub(crate) async fn run(spec: MetricSpec<'_>, ctx: &StepContext<'_>) -> StepOutcome {
    let (clients, mut log) = match setup(ctx).await {
        Ok(setup) => setup,
        Err(outcome) => return outcome,
    };
    let querier = match Querier::new(spec, ctx, clients) {
        Ok(querier) => querier,
        Err(reason) => {
            log.line(&ctx.redactor.redact(&reason)).await;
            return StepOutcome::failed(ctx.redactor.redact(&reason).into_owned());
        }
    };
    let baseline_value = ctx.baselines.get(&ctx.step.id.value);
    let baseline = spec.baseline.map(|baseline_spec| {
        let value = baseline_value.unwrap_or(Err(
            "it is measured just before the run's first deploy step, and none ran before this step",
        ));
        (baseline_spec, value)
    });
    if let Some((_, value)) = baseline {
        let line = match value {
            Ok(value) => format!("baseline (before the deploy): {}", number(value)),
            Err(why) => format!("baseline (before the deploy): none: {why}"),
        };
        log.line(&ctx.redactor.redact(&line)).await;
    }
    let expectations = MetricExpectations {
        name: spec.name,
        success_condition: spec.success_condition,
        failure_condition: spec.failure_condition,
    };
    let conditions = ConditionEvaluator::new();
    let mut outcome = measure_until_decided(ctx, &spec.policy, &mut log, async |attempt, log| {
        let answer = querier.query(ctx).await;
        let judgement = match &answer.result {
            Ok(result) => judge_metric(result, &expectations, baseline, &conditions),
            Err(judgement) => judgement.clone(),
        };
        answer
            .log(log, &attempt.to_string(), &judgement, ctx.redactor)
            .await;
        let mut outputs = IndexMap::new();
        if let Ok(result) = &answer.result
            && !result.samples.is_empty()
        {
            outputs.insert("value".to_owned(), result.shown());
        }
        Measurement {
            verdict: judgement.verdict,
            reason: ctx.redactor.redact(&judgement.reason).into_owned(),
            evidence: Some(answer.evidence(ctx.redactor, &judgement)),
            outputs,
        }
    })
    .await;
    if let Some((_, Ok(value))) = baseline {
        outcome.outputs.insert("baseline".to_owned(), number(value));
    }
    outcome
}

/// The value of `spec`'s query now, for a baseline: exactly one number, or why not. Logged to
/// `ctx.log_path`.
pub(crate) async fn measure_baseline(
    spec: MetricSpec<'_>,
    ctx: &StepContext<'_>,
) -> Result<f64, String> {
    let (clients, mut log) = setup(ctx).await.map_err(|outcome| outcome.message)?;
    let querier = Querier::new(spec, ctx, clients)
        .map_err(|reason| ctx.redactor.redact(&reason).into_owned())?;
    let answer = tokio::select! {
        () = ctx.cancel.cancelled() => return Err("cancelled".to_owned()),
        answer = querier.query(ctx) => answer,
    };
    let value = match &answer.result {
        Ok(result) => match (result.value(), result.samples.len()) {
            (Some(value), _) => Ok(value),
            (None, 0) => Err("the query returned no data".to_owned()),
            (None, n) => Err(format!(
                "a baseline compares one value, the query returned {n}"
            )),
        },
        Err(judgement) => Err(judgement.reason.clone()),
    };
    let judgement = match &value {
        Ok(value) => Judgement::new(
            Verdict::Success,
            format!("{} {}", spec.name, number(*value)),
        ),
        Err(why) => Judgement::new(Verdict::Error, why.clone()),
    };
    answer
        .log(&mut log, "baseline", &judgement, ctx.redactor)
        .await;
    let _ = log.finish().await;
    value.map_err(|why| ctx.redactor.redact(&why).into_owned())
}

/// How queries are sent: straight to a Prometheus server, or signed in to Azure Monitor.
enum Sender {
    Plain(reqwest::Client),
    Azure(MonitorClient),
}

struct Querier<'a> {
    spec: MetricSpec<'a>,
    sender: Sender,
}

/// One query and what came back.
struct Answer {
    /// `GET http://prometheus:9090/api/v1/query` (the query itself is logged on its own line).
    request_line: String,
    query: Option<String>,
    status: Option<u16>,
    body: Option<String>,
    result: Result<MetricResult, Judgement>,
}

impl<'a> Querier<'a> {
    /// Signs in when the source needs it: a sign-in that cannot be set up stops the step.
    fn new(spec: MetricSpec<'a>, ctx: &StepContext<'_>, clients: Clients) -> Result<Self, String> {
        let scope = match spec.source {
            MetricSource::Prometheus {
                auth: MetricAuth::None,
                ..
            } => None,
            MetricSource::Prometheus {
                auth: MetricAuth::Azure,
                ..
            } => Some(PROMETHEUS_SCOPE),
            MetricSource::LogAnalytics { .. } => Some(LOG_ANALYTICS_SCOPE),
        };
        let sender = match scope {
            None => Sender::Plain(clients.following),
            Some(scope) => {
                let signed_in = ctx
                    .azure
                    .sign_in()
                    .map_err(|err| crate::core::error_chain::distinct_error_chain(&err))?;
                Sender::Azure(MonitorClient::new(&signed_in, scope))
            }
        };
        Ok(Self { spec, sender })
    }

    async fn query(&self, ctx: &StepContext<'_>) -> Answer {
        let unrunnable = |request_line: String, query: Option<String>, reason: String| Answer {
            request_line,
            query,
            status: None,
            body: None,
            result: Err(Judgement::new(Verdict::Unrunnable, reason)),
        };
        let render = |what: &str, template: &crate::workflow::template::Template| {
            ctx.renderer
                .render(template)
                .map_err(|err| format!("failed to render {what} `{}`: {err}", template.source()))
        };
        let query = match render("query", self.spec.query) {
            Ok(query) => query,
            Err(reason) => return unrunnable(self.spec.query.source().to_owned(), None, reason),
        };
        let (url, body, shown_url) = match self.spec.source {
            MetricSource::Prometheus { url, .. } => {
                let base = match render("url", url) {
                    Ok(base) => base,
                    Err(reason) => return unrunnable(url.source().to_owned(), Some(query), reason),
                };
                match prometheus::query_url(&base, &query) {
                    Ok(full) => {
                        // Logged without the query (it has its own line) and any user:password.
                        let mut shown = full.clone();
                        shown.set_query(None);
                        let _ = shown.set_password(None);
                        let _ = shown.set_username("");
                        (full, None, format!("GET {shown}"))
                    }
                    Err(reason) => return unrunnable(base, Some(query), reason),
                }
            }
            MetricSource::LogAnalytics {
                workspace,
                timespan,
                ..
            } => {
                let id = match render("workspace", workspace) {
                    Ok(id) => id,
                    Err(reason) => {
                        return unrunnable(workspace.source().to_owned(), Some(query), reason);
                    }
                };
                match log_analytics::query_url(&id) {
                    Ok(url) => {
                        let shown = format!("POST {url}");
                        (
                            url,
                            Some(log_analytics::request_body(&query, timespan)),
                            shown,
                        )
                    }
                    Err(reason) => return unrunnable(id, Some(query), reason),
                }
            }
        };
        let exchanged = match &self.sender {
            Sender::Plain(client) => {
                let request = RenderedRequest {
                    method: HttpMethod::Get,
                    url,
                    headers: vec![("accept".to_owned(), "application/json".to_owned())],
                    body: None,
                    timeout: self.spec.timeout,
                };
                send(client, &request)
                    .await
                    .map(|response| (response.status, response.body.into_bytes()))
                    .map_err(|reason| Judgement::new(Verdict::Error, reason))
            }
            Sender::Azure(client) => azure_send(client, url, body, self.spec.timeout).await,
        };
        let (status, bytes) = match exchanged {
            Ok(answer) => answer,
            Err(judgement) => {
                return Answer {
                    request_line: shown_url,
                    query: Some(query),
                    status: None,
                    body: None,
                    result: Err(judgement),
                };
            }
        };
        let result = match self.spec.source {
            MetricSource::Prometheus { auth, .. } => prometheus::read_answer(status, &bytes, auth),
            MetricSource::LogAnalytics { column, .. } => {
                log_analytics::read_answer(status, &bytes, column)
            }
        };
        Answer {
            request_line: shown_url,
            query: Some(query),
            status: Some(status),
            body: Some(String::from_utf8_lossy(&bytes).into_owned()),
            result,
        }
    }
}

async fn azure_send(
    client: &MonitorClient,
    url: reqwest::Url,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), Judgement> {
    let url = azure_core::http::Url::parse(url.as_str())
        .map_err(|err| Judgement::new(Verdict::Unrunnable, format!("invalid url: {err}")))?;
    match tokio::time::timeout(timeout, client.send(url, body)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err @ crate::azure::monitor::MonitorError::SignIn(_))) => {
            Err(Judgement::new(Verdict::Unrunnable, err.to_string()))
        }
        Ok(Err(err)) => Err(Judgement::new(Verdict::Error, err.to_string())),
        Err(_) => Err(Judgement::new(
            Verdict::Error,
            format!("no answer within {}", humantime::format_duration(timeout)),
        )),
    }
}

impl Answer {
    /// A summary line (echoed), then the query and an excerpt of the answer (file only).
    async fn log(
        &self,
        log: &mut AttemptLog,
        prefix: &str,
        judgement: &Judgement,
        redactor: &Redactor,
    ) {
        let verdict = judgement.verdict.log_word();
        let status = self.status.map(|s| format!(" {s}")).unwrap_or_default();
        log.line(&redactor.redact(&format!(
            "{prefix}: {}{status}: {verdict}: {}",
            self.request_line, judgement.reason
        )))
        .await;
        if let Some(query) = &self.query {
            log.detail(&redactor.redact(&format!("    query: {query}")))
                .await;
        }
        if let Some(body) = &self.body {
            let body = excerpt(body.trim(), ANSWER_EXCERPT)
                .escape_debug()
                .to_string();
            log.detail(&redactor.redact(&format!("    answer: {body}")))
                .await;
        }
    }

    /// The query and the answer, for the fix step.
    fn evidence(&self, redactor: &Redactor, judgement: &Judgement) -> String {
        let mut text = format!("{}\n", self.request_line);
        if let Some(query) = &self.query {
            text.push_str(&format!("query: {query}\n"));
        }
        match (self.status, &self.body) {
            (Some(status), Some(body)) => {
                text.push_str(&format!(
                    "status {status}\n{}",
                    excerpt(body.trim(), ANSWER_EXCERPT)
                ));
            }
            _ => text.push_str(&format!("no answer: {}", judgement.reason)),
        }
        redactor.redact(&text).into_owned()
    }
}
