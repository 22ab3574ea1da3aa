//! `verify: {http: ...}`: one request per measurement.

use super::analysis::ConditionEvaluator;
use super::measure::{Measurement, measure_until_decided};
use super::probe::{ProbeContext, probe};
use super::setup;
use crate::steps::{StepContext, StepOutcome};
use crate::workflow::step_config::verify::HttpCheck;

pub(crate) async fn run(check: &HttpCheck, ctx: &StepContext<'_>) -> StepOutcome {
    let (clients, mut log) = match setup(ctx).await {
        Ok(setup) => setup,
        Err(outcome) => return outcome,
    };
    let conditions = ConditionEvaluator::new();
    let spec = check.request();
    let probe_cx = ProbeContext {
        clients: &clients,
        renderer: ctx.renderer,
        conditions: &conditions,
        scope: &[],
    };
    // Starts from the run's redactor; header values and captured credentials join it.
    let mut redactor = ctx.redactor.clone();
    measure_until_decided(ctx, &check.policy(), &mut log, async |attempt, log| {
        let result = probe(&spec, &probe_cx, &mut redactor).await;
        result
            .log(log, &attempt.to_string(), &result.judgement, &redactor)
            .await;
        Measurement {
            verdict: result.judgement.verdict,
            reason: redactor.redact(&result.judgement.reason).into_owned(),
            evidence: Some(result.evidence(&redactor)),
            outputs: result.outputs(),
        }
    })
    .await
}
