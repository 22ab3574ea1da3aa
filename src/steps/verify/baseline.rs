//! Baselines: a metric check's value measured just before the run's first deploy step, kept
//! for the run so the check can compare what it measures after the deploy (`baseline:`).
//!
//! The engine takes them once per run ([`needs_baseline`](crate::workflow::step_config::verify::needs_baseline) says which steps), so a retry of the
//! run's steps after a repair still compares with what was live before the run changed it.

use std::collections::BTreeMap;

use super::VerifyConfig;
use crate::steps::StepContext;
use crate::workflow::model::StepKind;

/// Each step's baseline, or why it could not be measured.
#[derive(Debug, Default)]
pub struct Baselines {
    values: BTreeMap<String, Result<f64, String>>,
    taken: bool,
}

/// No baselines: for running a step outside a run.
static NONE: Baselines = Baselines {
    values: BTreeMap::new(),
    taken: false,
};

impl Baselines {
    /// No baselines, for running a step outside a run (tests, tools).
    pub fn none() -> &'static Baselines {
        &NONE
    }

    /// Whether this run has measured its baselines already.
    pub fn taken(&self) -> bool {
        self.taken
    }

    /// Records one step's baseline.
    pub fn insert(&mut self, step_id: &str, value: Result<f64, String>) {
        self.values.insert(step_id.to_owned(), value);
    }

    /// Marks the baselines as measured: they are not measured again in this run.
    pub fn mark_taken(&mut self) {
        self.taken = true;
    }

    pub(crate) fn get(&self, step_id: &str) -> Option<Result<f64, &str>> {
        self.values
            .get(step_id)
            .map(|value| value.as_ref().copied().map_err(String::as_str))
    }
}

/// Measures the baseline of `ctx.step` (one query, logged to `ctx.log_path`); `None` when the
/// step has no baseline to measure.
pub async fn measure(ctx: &StepContext<'_>) -> Option<Result<f64, String>> {
    let spec = match &ctx.step.kind {
        StepKind::Verify(VerifyConfig::Prometheus(check)) if check.baseline.is_some() => {
            check.spec()
        }
        StepKind::Verify(VerifyConfig::LogAnalytics(check)) if check.baseline.is_some() => {
            check.spec()
        }
        _ => return None,
    };
    Some(super::metric::measure_baseline(spec, ctx).await)
}
