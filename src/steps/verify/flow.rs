//! `verify: {flow: ...}`: one measurement runs every request in order; a value captured from
//! one response is `{{ flow.<var> }}` in later requests. The first request that does not
//! succeed ends the measurement and is named in its reason.

use indexmap::IndexMap;

use super::analysis::{ConditionEvaluator, Judgement, Verdict};
use super::attempt_log::AttemptLog;
use super::measure::{Attempt, Measurement, measure_until_decided};
use super::probe::{Clients, ProbeContext, probe};
use super::response::ResponseSnapshot;
use super::setup;
use crate::redact::{Redactor, is_secret_name};
use crate::steps::{StepContext, StepOutcome};
use crate::workflow::step_config::verify::{Capture, FlowCheck};
use crate::workflow::template::Renderer;

pub(crate) async fn run(flow: &FlowCheck, ctx: &StepContext<'_>) -> StepOutcome {
    let (clients, mut log) = match setup(ctx).await {
        Ok(setup) => setup,
        Err(outcome) => return outcome,
    };
    let runner = FlowRunner {
        flow,
        name: ctx.step.display_name(),
        clients: &clients,
        renderer: ctx.renderer,
        conditions: ConditionEvaluator::new(),
    };
    // Starts from the run's redactor; header values and captured credentials join it.
    let mut redactor = ctx.redactor.clone();
    measure_until_decided(ctx, &flow.policy(), &mut log, async |attempt, log| {
        runner.run_once(attempt, log, &mut redactor).await
    })
    .await
}

struct FlowRunner<'a> {
    flow: &'a FlowCheck,
    name: &'a str,
    clients: &'a Clients,
    renderer: &'a Renderer,
    conditions: ConditionEvaluator,
}

impl FlowRunner<'_> {
    async fn run_once(
        &self,
        attempt: Attempt,
        log: &mut AttemptLog,
        redactor: &mut Redactor,
    ) -> Measurement {
        let mut captured = serde_json::Map::new();
        // Captures are published as step outputs, except credentials (masked instead), with
        // `status` and `latency_ms` of the last request made.
        let mut outputs = IndexMap::new();
        for (index, request) in self.flow.requests.iter().enumerate() {
            let scope = [(
                "flow",
                minijinja::Value::from(minijinja::value::Serde(&captured)),
            )];
            let probe_cx = ProbeContext {
                clients: self.clients,
                renderer: self.renderer,
                conditions: &self.conditions,
                scope: &scope,
            };
            let result = probe(&request.request(), &probe_cx, redactor).await;
            let mut judgement = result.judgement.clone();
            if let (Verdict::Success, Some(response)) = (judgement.verdict, &result.response) {
                for (var, capture) in &request.capture {
                    match extract(capture, response) {
                        Ok(value) => {
                            if is_secret_name(var) {
                                redactor.add_secret(&value);
                            } else {
                                outputs.insert(var.clone(), value.clone());
                            }
                            captured.insert(var.clone(), serde_json::Value::String(value));
                        }
                        Err(reason) => {
                            judgement = Judgement::new(
                                Verdict::Failure,
                                format!("capture `{var}`: {reason}"),
                            );
                            break;
                        }
                    }
                }
            }
            let label = format!("request {} \"{}\"", index + 1, request.name.value);
            result
                .log(log, &format!("{attempt}: {label}"), &judgement, redactor)
                .await;
            outputs.extend(result.outputs());
            if judgement.verdict != Verdict::Success {
                return Measurement {
                    verdict: judgement.verdict,
                    reason: redactor
                        .redact(&format!(
                            "flow \"{}\" {label}: {}",
                            self.name, judgement.reason
                        ))
                        .into_owned(),
                    evidence: Some(result.evidence(redactor)),
                    outputs,
                };
            }
        }
        let count = self.flow.requests.len();
        Measurement {
            verdict: Verdict::Success,
            reason: format!(
                "flow \"{}\": {count} {} passed",
                self.name,
                if count == 1 { "request" } else { "requests" }
            ),
            evidence: None,
            outputs,
        }
    }
}

/// The captured text: JSON strings as they are, other JSON values as compact JSON.
fn extract(capture: &Capture, response: &ResponseSnapshot) -> Result<String, String> {
    match capture {
        Capture::Json(pointer) => {
            let document = response
                .json
                .as_ref()
                .ok_or("the response body is not json")?;
            match document.pointer(pointer) {
                Some(serde_json::Value::String(text)) => Ok(text.clone()),
                Some(value) => Ok(value.to_string()),
                None => Err(format!("no value at `{pointer}` in the response")),
            }
        }
        Capture::Header(name) => response
            .header(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("no `{name}` header in the response")),
        Capture::Regex(regex) => {
            let captures = regex
                .captures(&response.body)
                .ok_or_else(|| format!("`{regex}` does not match the response body"))?;
            let found = captures.get(1).or_else(|| captures.get(0));
            Ok(found.map(|m| m.as_str().to_owned()).unwrap_or_default())
        }
    }
}
