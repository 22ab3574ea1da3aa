//! `metrics.json`: the run in numbers (the seed's `metrics/deployments.json`), written when
//! the run finishes and again by `finish`, so an interrupted run leaves one too.
//!
//! Tokens are summed from the decisions that audit an LLM call
//! ([`Decision::tokens`](crate::engine::decision::Decision::tokens)): the fix and review steps
//! report the usage of each call that way.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use super::Reporter;
use super::atomic_file::write_atomically;
use super::run_record::RunRecord;
use crate::engine::events::{Event, RunOutcome};
use crate::steps::StepStatus;

pub struct MetricsReport {
    path: PathBuf,
    record: RunRecord,
}

#[derive(Debug, Serialize)]
struct Metrics<'a> {
    run_id: Option<&'a str>,
    workflow: &'a str,
    environment: Option<&'a str>,
    started_at: Option<String>,
    outcome: RunOutcome,
    reason: &'a str,
    iterations: u32,
    duration_seconds: f64,
    per_iteration: Vec<IterationMetrics<'a>>,
    /// Keyed by step id, in the order steps first finished.
    steps: IndexMap<&'a str, StepMetrics>,
    tokens: Tokens,
    decisions: usize,
}

#[derive(Debug, Serialize)]
struct IterationMetrics<'a> {
    iteration: u32,
    /// `None` while the iteration was still running.
    passed: Option<bool>,
    /// The sum of its steps' durations.
    #[serde(rename = "duration_seconds", serialize_with = "seconds")]
    duration: Duration,
    fingerprint: Option<&'a str>,
    failure: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct StepMetrics {
    phase: &'static str,
    /// Times the step ran (skips not counted).
    count: u32,
    /// Runs that failed or were inconclusive, required or not.
    failures: u32,
    skipped: u32,
    #[serde(rename = "total_duration_seconds", serialize_with = "seconds")]
    total_duration: Duration,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

#[derive(Debug, Default, Serialize)]
struct Tokens {
    prompt: u64,
    completion: u64,
    total: u64,
}

impl MetricsReport {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            record: RunRecord::default(),
        }
    }

    fn write(&self) -> io::Result<()> {
        let mut json = serde_json::to_vec_pretty(&metrics(&self.record))?;
        json.push(b'\n');
        write_atomically(&self.path, &json)
    }
}

impl Reporter for MetricsReport {
    fn name(&self) -> &str {
        "metrics.json"
    }

    fn on_event(&mut self, event: &Event) -> io::Result<()> {
        self.record.apply(event);
        match event {
            Event::RunFinished { .. } => self.write(),
            _ => Ok(()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.write()
    }
}

fn metrics(record: &RunRecord) -> Metrics<'_> {
    let mut steps: IndexMap<&str, StepMetrics> = IndexMap::new();
    for (_, step) in record.steps() {
        let entry = steps
            .entry(step.step_id.as_str())
            .or_insert_with(|| StepMetrics {
                phase: step.phase.key(),
                count: 0,
                failures: 0,
                skipped: 0,
                total_duration: Duration::ZERO,
            });
        if step.outcome.status == StepStatus::Skipped {
            entry.skipped += 1;
            continue;
        }
        entry.count += 1;
        entry.failures += u32::from(step.is_failure());
        entry.total_duration += step.duration;
    }
    let mut tokens = Tokens::default();
    for used in record
        .decisions
        .iter()
        .filter_map(|record| record.decision.tokens())
    {
        tokens.prompt += used.prompt;
        tokens.completion += used.completion;
    }
    tokens.total = tokens.prompt + tokens.completion;
    let per_iteration = record
        .iterations
        .iter()
        .map(|iteration| {
            let result = iteration.result.as_ref();
            IterationMetrics {
                iteration: iteration.number,
                passed: result.map(|result| result.passed),
                duration: iteration.steps.iter().map(|step| step.duration).sum(),
                fingerprint: result.and_then(|result| result.fingerprint.as_deref()),
                failure: result.and_then(|result| result.failure.as_deref()),
            }
        })
        .collect();
    let start = record.start.as_ref();
    Metrics {
        run_id: start.map(|start| start.run_id.as_str()),
        workflow: record.workflow(),
        environment: start.and_then(|start| start.environment.as_deref()),
        started_at: start.map(|start| humantime::format_rfc3339_millis(start.at).to_string()),
        outcome: record.outcome(),
        reason: record.reason(),
        iterations: record.iteration_count(),
        duration_seconds: record.duration().as_secs_f64(),
        per_iteration,
        steps,
        tokens,
        decisions: record.decisions.len(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::report::test_events::{crashed_run, interrupted_run, two_iteration_run};

    fn replay(events: &[Event]) -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        let mut metrics = MetricsReport::new(&path);
        for event in events {
            metrics.on_event(event).unwrap();
        }
        metrics.finish().unwrap();
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn a_finished_run_in_numbers() {
        let metrics = replay(&two_iteration_run());
        assert_eq!(
            metrics,
            json!({
                "run_id": "run-1",
                "workflow": "fleet-deploy",
                "environment": "staging",
                "started_at": "2026-11-18T11:06:40.000Z",
                "outcome": "succeeded",
                "reason": "all required steps passed",
                "iterations": 2,
                "duration_seconds": 14.66,
                "per_iteration": [
                    {"iteration": 1, "passed": false, "duration_seconds": 7.5, "fingerprint": "3f2a9c", "failure": "steps/test: exit code 2"},
                    {"iteration": 2, "passed": true, "duration_seconds": 6.66, "fingerprint": null, "failure": null},
                ],
                "steps": {
                    "lint": {"phase": "steps", "count": 2, "failures": 1, "skipped": 0, "total_duration_seconds": 0.56},
                    "test": {"phase": "steps", "count": 2, "failures": 1, "skipped": 0, "total_duration_seconds": 2.3},
                    "deploy": {"phase": "steps", "count": 1, "failures": 0, "skipped": 1, "total_duration_seconds": 4.5},
                    "smoke": {"phase": "steps", "count": 1, "failures": 0, "skipped": 1, "total_duration_seconds": 0.8},
                    "propose": {"phase": "repair", "count": 1, "failures": 0, "skipped": 0, "total_duration_seconds": 4.0},
                    "approve": {"phase": "repair", "count": 1, "failures": 0, "skipped": 0, "total_duration_seconds": 2.0},
                },
                "tokens": {"prompt": 2000, "completion": 350, "total": 2350},
                "decisions": 2,
            })
        );
    }

    #[test]
    fn an_interrupted_run_still_gets_metrics() {
        let metrics = replay(&interrupted_run());
        assert_eq!(metrics["outcome"], "interrupted");
        assert_eq!(metrics["reason"], "interrupted by ctrl-c");
        assert_eq!(metrics["iterations"], 2);
        assert_eq!(metrics["steps"]["smoke"]["failures"], 1);
        assert_eq!(metrics["tokens"]["total"], 0);
    }

    #[test]
    fn a_run_without_its_final_event_counts_as_interrupted() {
        let metrics = replay(&crashed_run());
        assert_eq!(metrics["outcome"], "interrupted");
        assert_eq!(metrics["reason"], "the run stopped before it finished");
        assert_eq!(metrics["iterations"], 2);
        assert!(metrics["duration_seconds"].as_f64().unwrap() >= 0.0);
        assert_eq!(metrics["steps"]["build"]["count"], 1);
        assert_eq!(
            metrics["per_iteration"][1]["passed"],
            serde_json::Value::Null
        );
    }
}
