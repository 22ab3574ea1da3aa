//! `verify`: HTTP checks, multi-request user flows, smoke scripts and metric queries
//! (Prometheus, Log Analytics).
//!
//! # Measurements
//!
//! Every attempt is a *measurement* with one verdict:
//!
//! - **success**: the response met every expectation (`expect_status`, default any 2xx;
//!   `expect_body_contains`; `expect_json`; `max_latency`) and the `success_condition`, if any;
//! - **failure**: the service answered wrongly: an expectation missed, the
//!   `failure_condition` held, or a `success_condition` without a `failure_condition` did not;
//! - **inconclusive**: both conditions are set and neither held (Argo's "inconclusive");
//! - **error**: no answer to judge: connection refused, per-request `timeout`, an unreadable
//!   body, a condition that cannot be evaluated on this response (`response.json.x` on HTML).
//!
//! A template that does not render or an invalid url stops the step at once: retrying cannot
//! change it. Conditions are minijinja expressions over `response` = `{status, headers (names
//! lowercased), body, json (none when not JSON), latency_ms}`, plus `flow` in a flow. A
//! `success_condition` replaces the default "any 2xx" status expectation. Latency runs from
//! sending the request to the last byte of the body.
//!
//! # Deciding the step
//!
//! Up to `1 + retries` measurements are taken, `interval` apart (from the end of one to the
//! start of the next). Limits count measurements tolerated, as in Argo, so `0` means "none":
//!
//! - the step **passes** as soon as one measurement succeeds;
//! - it **fails** once failures in a row exceed `consecutive_failure_limit` (errors and
//!   inconclusive measurements end a run of failures: a service still starting is not
//!   answering wrongly);
//! - it is **inconclusive** once inconclusive measurements exceed `inconclusive_limit`;
//! - when attempts run out it **fails** if any measurement failed or all were errors, and is
//!   **inconclusive** if some were inconclusive and none failed decisively.
//!
//! The step's own `timeout` bounds the whole step, retries and intervals included; `timeout`
//! under `http` (default 10s) bounds one request. Cancellation stops at once.
//!
//! A flow is measured as a whole: one measurement runs its requests in order and fails (or is
//! inconclusive) at the first request that does not succeed, naming it. `retries` and the
//! limits apply to runs of the flow.
//!
//! # What the step leaves
//!
//! Every attempt is logged (method, url, status, latency, a body excerpt) to the step log.
//! Outputs: `attempts`, and `status` and `latency_ms` of the last response; a flow also
//! publishes its captures. Values of credential-like headers (`Authorization`, `Cookie`,
//! `X-Api-Key`, ...) and captures with credential-like names (`token`, `session`, ...) are
//! masked in logs, messages and evidence, and such captures are not published as outputs.
//! On failure `evidence` holds the last response (status, headers, first 2 KiB of body).
//!
//! # Metric checks
//!
//! `prometheus` and `log_analytics` take one query per measurement and judge its value, with
//! the same verdicts and limits: conditions see `result` (the number, or a list when the query
//! returns several series or rows), `series` (`[{labels, value}]`) and `baseline`. No data is
//! an error measurement; no access (401/403) or a query the service rejects stops the step at
//! once, naming what to fix. Every reason carries the value: `error rate 0.031 > 0.01`.
//! `count` is at most how many measurements; `soak` measures every `interval` for a duration
//! instead, and fails at the first failure (`consecutive_failure_limit` defaults to 0). With
//! `baseline`, the engine measures the same query just before the run's first deploy step
//! ([`baseline`]); a value worse than the baseline by more than the tolerance fails, and a
//! missing baseline makes the measurement inconclusive. Outputs: `value`, `baseline`.

mod analysis;
mod attempt_log;
pub mod baseline;
mod flow;
mod http;
mod log_analytics;
mod measure;
mod metric;
mod metric_analysis;
mod probe;
mod prometheus;
mod response;

use attempt_log::AttemptLog;
use probe::Clients;

use crate::steps::{StepContext, StepOutcome};
use crate::workflow::step_config::gate::GateConfig;
use crate::workflow::step_config::verify::VerifyConfig;

/// For `--dry-run`: what the check would ask, and of what.
pub fn describe(config: &VerifyConfig, ctx: &StepContext<'_>) -> String {
    let show = |template| super::rendered_line(ctx, template);
    match config {
        VerifyConfig::Http(http) => {
            format!("would check {} {}", http.method.as_str(), show(&http.url))
        }
        VerifyConfig::Flow(flow) => {
            format!("would run a flow of {} request(s)", flow.requests.len())
        }
        VerifyConfig::Script(script) => format!("would run `{}`", show(&script.run)),
        VerifyConfig::Prometheus(check) => {
            format!(
                "would query {} for `{}`",
                show(&check.url),
                show(&check.query)
            )
        }
        VerifyConfig::LogAnalytics(check) => format!(
            "would query Log Analytics workspace {} for `{}`",
            show(&check.workspace),
            show(&check.query)
        ),
    }
}

/// Runs a verify step. Never panics and always returns an outcome; `Cancelled` promptly when
/// `ctx.cancel` fires.
pub async fn run(config: &VerifyConfig, ctx: &StepContext<'_>) -> StepOutcome {
    match config {
        VerifyConfig::Http(check) => http::run(check, ctx).await,
        VerifyConfig::Flow(flow) => flow::run(flow, ctx).await,
        VerifyConfig::Script(script) => run_script(script, ctx).await,
        VerifyConfig::Prometheus(check) => metric::run(check.spec(), ctx).await,
        VerifyConfig::LogAnalytics(check) => metric::run(check.spec(), ctx).await,
    }
}

/// A smoke-test script passes when it exits 0: exactly a gate's contract.
async fn run_script(script: &GateConfig, ctx: &StepContext<'_>) -> StepOutcome {
    crate::steps::gate::run(script, ctx).await
}

/// The HTTP clients and the step log every HTTP-based check needs.
async fn setup(ctx: &StepContext<'_>) -> Result<(Clients, AttemptLog), StepOutcome> {
    let clients = Clients::new()
        .map_err(|err| StepOutcome::failed(format!("failed to build the http client: {err}")))?;
    let log = AttemptLog::create(&ctx.log_path, ctx.echo, &ctx.step.id.value)
        .await
        .map_err(|err| {
            StepOutcome::failed(format!(
                "failed to create step log `{}`: {err}",
                ctx.log_path.display()
            ))
        })?;
    Ok((clients, log))
}
