//! The measurement loop: take measurements until the limits decide, within the step's
//! timeout, stopping promptly on cancel; then turn what happened into a `StepOutcome`.

use std::fmt;
use std::time::Instant;

use indexmap::IndexMap;

use super::analysis::{Decision, Tally, Verdict};
use super::attempt_log::AttemptLog;
use crate::steps::{StepContext, StepOutcome, StepStatus};
use crate::workflow::step_config::verify::MeasurementPolicy;

/// One measurement's result, with what the outcome needs if it is the last.
#[derive(Debug)]
pub(crate) struct Measurement {
    pub(crate) verdict: Verdict,
    pub(crate) reason: String,
    /// The response (or the missing response) for the fix step; already redacted.
    pub(crate) evidence: Option<String>,
    /// `status`, `latency_ms`, flow captures.
    pub(crate) outputs: IndexMap<String, String>,
}

/// `attempt 2/4`, or `measurement 2` in a soak (which ends by time, not by count).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt {
    pub(crate) number: u32,
    pub(crate) of: Option<u32>,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.of {
            Some(of) => write!(f, "attempt {}/{of}", self.number),
            None => write!(f, "measurement {}", self.number),
        }
    }
}

enum Stop {
    Decided(Decision),
    TimedOut,
    Cancelled,
}

pub(crate) async fn measure_until_decided<F>(
    ctx: &StepContext<'_>,
    policy: &MeasurementPolicy,
    log: &mut AttemptLog,
    mut measure: F,
) -> StepOutcome
where
    F: AsyncFnMut(Attempt, &mut AttemptLog) -> Measurement,
{
    let mut tally = Tally::default();
    let mut last: Option<Measurement> = None;
    let mut last_inconclusive: Option<String> = None;
    let started = Instant::now();
    let stop = {
        let work = async {
            loop {
                let attempt = Attempt {
                    number: tally.attempts + 1,
                    of: policy.soak.is_none().then_some(policy.attempts),
                };
                let measurement = measure(attempt, &mut *log).await;
                let decision = tally.record(measurement.verdict, policy, started.elapsed());
                if measurement.verdict == Verdict::Inconclusive {
                    last_inconclusive = Some(measurement.reason.clone());
                }
                last = Some(measurement);
                if let Some(decision) = decision {
                    return decision;
                }
                tokio::time::sleep(policy.interval).await;
            }
        };
        let deadline = async {
            match ctx.timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => Stop::Cancelled,
            () = deadline => Stop::TimedOut,
            decision = work => Stop::Decided(decision),
        }
    };

    let last_reason = last.as_ref().map(|m| m.reason.as_str());
    let mut outcome = match stop {
        Stop::Cancelled => StepOutcome::new(StepStatus::Cancelled, "cancelled"),
        Stop::TimedOut => {
            let limit = ctx
                .timeout
                .map(|t| humantime::format_duration(t).to_string())
                .unwrap_or_default();
            StepOutcome::failed(match last_reason {
                Some(reason) => format!("timed out after {limit}; last attempt: {reason}"),
                None => format!("timed out after {limit} during the first attempt"),
            })
        }
        Stop::Decided(Decision::Pass) => StepOutcome::passed(with_suffix(
            last_reason.unwrap_or("passed"),
            &attempts_suffix(tally.attempts),
        )),
        Stop::Decided(Decision::Fail { why }) => {
            StepOutcome::failed(with_suffix(last_reason.unwrap_or("failed"), &why))
        }
        Stop::Decided(Decision::Inconclusive { why }) => StepOutcome::new(
            StepStatus::Inconclusive,
            format!(
                "{}: {}",
                with_suffix("inconclusive", &why),
                last_inconclusive
                    .as_deref()
                    .unwrap_or("no decisive measurement")
            ),
        ),
    };

    outcome
        .outputs
        .insert("attempts".to_owned(), tally.attempts.to_string());
    if let Some(last) = last {
        outcome.outputs.extend(last.outputs);
        if outcome.status != StepStatus::Passed {
            outcome.evidence = last.evidence;
        }
    }
    log.line(&format!(
        "result: {}: {}",
        outcome.status.as_str(),
        outcome.message
    ))
    .await;
    if let Some(err) = log.finish().await {
        outcome.message = format!(
            "{} (step log incomplete: failed to write `{}`: {err})",
            outcome.message,
            ctx.log_path.display()
        );
    }
    outcome.output_tail = log.tail();
    outcome.log_path = Some(ctx.log_path.clone());
    outcome
}

fn attempts_suffix(attempts: u32) -> String {
    if attempts > 1 {
        format!("after {attempts} attempts")
    } else {
        String::new()
    }
}

fn with_suffix(text: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        text.to_owned()
    } else {
        format!("{text} {suffix}")
    }
}
