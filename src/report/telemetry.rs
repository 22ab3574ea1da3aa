//! [`Telemetry`]: the run as an OpenTelemetry trace, built from its (masked) events as a
//! [`Reporter`] and exported once the run has ended (see [`crate::telemetry`] for where to).
//!
//! The spans: `run <workflow>` is the root; `iteration <n>` is its child and holds the steps
//! of that iteration's `steps` and `repair` phases; `on_success` and `on_give_up` steps hang
//! from the run. A step span is `step <id>`. Attributes are under `agent_orch.`: the run's
//! outcome, reason and iterations; each iteration's failure fingerprint; each step's kind,
//! phase and status; the LLM tokens a step, an iteration and the run used (summed from the
//! `tokens` of decisions, as `metrics.json` does); the patch hash (`agent_orch.patch.sha256`)
//! a fix step proposed, an iteration applied and the run kept.
//!
//! Times are taken as events arrive (they are emitted as things happen); a step span ends
//! when its `StepFinished` arrives and starts its measured duration before that.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use super::Reporter;
use crate::engine::decision::Decision;
use crate::engine::events::{Event, RunOutcome};
use crate::redact::Redactor;
use crate::steps::StepStatus;
use crate::telemetry::{
    Attribute, Exporters, Span, SpanId, SpanStatus, TelemetryError, Trace, TraceId, new_span_id,
    new_trace_id,
};
use crate::workflow::model::Phase;

pub struct Telemetry {
    exporters: Exporters,
    trace: Arc<Mutex<TraceBuilder>>,
}

impl Telemetry {
    /// Telemetry as this process's environment sets it up, and a warning per setting that
    /// does not parse.
    pub fn from_env() -> (Self, Vec<String>) {
        let (exporters, warnings) = Exporters::from_env(&|name| std::env::var(name).ok());
        (Self::new(exporters), warnings)
    }

    pub fn new(exporters: Exporters) -> Self {
        let builder = TraceBuilder {
            resource: exporters.resource.clone(),
            parent: exporters.parent,
            ..TraceBuilder::default()
        };
        Self {
            exporters,
            trace: Arc::new(Mutex::new(builder)),
        }
    }

    /// Nowhere to export to: no reporter is needed.
    pub fn is_empty(&self) -> bool {
        self.exporters.is_empty()
    }

    /// What the run must mask besides its own secrets (OTLP header values, the
    /// instrumentation key).
    pub fn secret_values(&self) -> Vec<&str> {
        self.exporters.secret_values()
    }

    /// The reporter that builds the trace from the run's events.
    pub fn report(&self) -> TelemetryReport {
        TelemetryReport {
            trace: Arc::clone(&self.trace),
        }
    }

    /// The trace so far; spans still open end now.
    pub fn trace(&self) -> Trace {
        self.trace
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .build(SystemTime::now())
    }

    /// Exports the trace, every text through `redactor` first; returns the failures (for
    /// warnings). Bounded by the exporters' timeout.
    pub async fn export(&self, redactor: &Redactor) -> Vec<TelemetryError> {
        let mut trace = self.trace();
        trace.redact(redactor);
        self.exporters.export(&trace).await
    }
}

/// Feeds the shared trace as events arrive (already masked by `Reporters`).
pub struct TelemetryReport {
    trace: Arc<Mutex<TraceBuilder>>,
}

impl Reporter for TelemetryReport {
    fn name(&self) -> &str {
        "telemetry"
    }

    fn on_event(&mut self, event: &Event) -> io::Result<()> {
        self.trace
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(event, SystemTime::now());
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Tokens {
    prompt: u64,
    completion: u64,
}

impl Tokens {
    fn add(&mut self, other: Tokens) {
        self.prompt += other.prompt;
        self.completion += other.completion;
    }

    fn of(decision: &Decision) -> Tokens {
        decision
            .tokens()
            .map(|used| Tokens {
                prompt: used.prompt,
                completion: used.completion,
            })
            .unwrap_or_default()
    }

    fn is_zero(self) -> bool {
        self.prompt == 0 && self.completion == 0
    }

    fn attributes(self) -> [Attribute; 3] {
        [
            Attribute::int("agent_orch.tokens.prompt", self.prompt),
            Attribute::int("agent_orch.tokens.completion", self.completion),
            Attribute::int("agent_orch.tokens.total", self.prompt + self.completion),
        ]
    }
}

/// A span still being filled in.
struct Pending {
    span: Span,
    ended: bool,
    tokens: Tokens,
    patch: Option<String>,
}

impl Pending {
    fn new(trace_id: TraceId, parent: Option<SpanId>, name: String, start: SystemTime) -> Self {
        Self {
            span: Span {
                trace_id,
                span_id: new_span_id(),
                parent,
                name,
                start,
                end: start,
                status: SpanStatus::Unset,
                attributes: Vec::new(),
            },
            ended: false,
            tokens: Tokens::default(),
            patch: None,
        }
    }

    fn end_at(&mut self, at: SystemTime) {
        self.span.end = self.span.end.max(at);
        self.ended = true;
    }

    /// The span with its tokens and patch as attributes (the run's tokens always, others'
    /// when there were any); an open span ends at `now`.
    fn finish(&self, now: SystemTime, always_tokens: bool) -> Span {
        let mut span = self.span.clone();
        if !self.ended {
            span.end = span.end.max(now);
        }
        if always_tokens || !self.tokens.is_zero() {
            span.attributes.extend(self.tokens.attributes());
        }
        if let Some(patch) = &self.patch {
            span.attributes
                .push(Attribute::string("agent_orch.patch.sha256", patch));
        }
        span
    }
}

/// The step between its `StepStarted` and `StepFinished`: what decisions in between add up to.
struct OpenStep {
    iteration: u32,
    step_id: String,
    tokens: Tokens,
    patch: Option<String>,
}

#[derive(Default)]
struct TraceBuilder {
    resource: Vec<Attribute>,
    parent: Option<(TraceId, SpanId)>,
    trace_id: TraceId,
    run: Option<Pending>,
    iterations: Vec<(u32, Pending)>,
    steps: Vec<Span>,
    open_step: Option<OpenStep>,
    /// Hashes of the patches applied and not reverted, oldest first.
    kept_patches: Vec<String>,
    last_fingerprint: Option<String>,
}

impl TraceBuilder {
    fn apply(&mut self, event: &Event, now: SystemTime) {
        match event {
            Event::RunStarted {
                run_id,
                workflow,
                environment,
                max_iterations,
                at,
                ..
            } => {
                self.trace_id = self.parent.map_or_else(new_trace_id, |(trace, _)| trace);
                let mut run = Pending::new(
                    self.trace_id,
                    self.parent.map(|(_, span)| span),
                    format!("run {workflow}"),
                    *at,
                );
                run.span.attributes.extend([
                    Attribute::string("agent_orch.run.id", run_id),
                    Attribute::string("agent_orch.workflow", workflow),
                    Attribute::int("agent_orch.run.max_iterations", *max_iterations),
                ]);
                if let Some(environment) = environment {
                    run.span
                        .attributes
                        .push(Attribute::string("agent_orch.environment", environment));
                }
                self.run = Some(run);
            }
            Event::IterationStarted { iteration } => {
                let parent = self.run_span_id();
                let mut pending =
                    Pending::new(self.trace_id, parent, format!("iteration {iteration}"), now);
                pending
                    .span
                    .attributes
                    .push(Attribute::int("agent_orch.iteration", *iteration));
                self.iterations.push((*iteration, pending));
            }
            Event::StepStarted {
                iteration, step_id, ..
            } => {
                self.open_step = Some(OpenStep {
                    iteration: *iteration,
                    step_id: step_id.clone(),
                    tokens: Tokens::default(),
                    patch: None,
                });
            }
            Event::StepFinished {
                iteration,
                phase,
                step_id,
                step_name,
                kind,
                required,
                duration,
                outcome,
            } => {
                let open = self
                    .open_step
                    .take()
                    .filter(|open| open.iteration == *iteration && open.step_id == *step_id);
                let in_iteration = matches!(phase, Phase::Steps | Phase::Repair);
                let parent = if in_iteration {
                    self.iteration_mut(*iteration)
                        .map(|pending| {
                            pending.end_at(now);
                            pending.span.span_id
                        })
                        .or_else(|| self.run_span_id())
                } else {
                    self.run_span_id()
                };
                let start = now.checked_sub(*duration).unwrap_or(now);
                let mut step =
                    Pending::new(self.trace_id, parent, format!("step {step_id}"), start);
                step.end_at(now);
                let attributes = &mut step.span.attributes;
                attributes.extend([
                    Attribute::string("agent_orch.step.id", step_id),
                    Attribute::string("agent_orch.step.name", step_name),
                    Attribute::string("agent_orch.step.kind", *kind),
                    Attribute::string("agent_orch.step.phase", phase.key()),
                    Attribute::bool("agent_orch.step.required", *required),
                    Attribute::string("agent_orch.step.status", outcome.status.as_str()),
                    Attribute::int("agent_orch.iteration", *iteration),
                ]);
                if !outcome.message.is_empty() {
                    attributes.push(Attribute::string(
                        "agent_orch.step.message",
                        &outcome.message,
                    ));
                }
                if let Some(code) = outcome.exit_code {
                    attributes.push(Attribute::int("agent_orch.step.exit_code", code));
                }
                step.span.status = match outcome.status {
                    StepStatus::Passed => SpanStatus::Ok,
                    StepStatus::Skipped => SpanStatus::Unset,
                    StepStatus::Failed | StepStatus::Inconclusive | StepStatus::Cancelled => {
                        SpanStatus::Error(outcome.message.clone())
                    }
                };
                if let Some(open) = open {
                    step.tokens = open.tokens;
                    step.patch = open.patch;
                }
                if let Some(patch) = outcome.outputs.get("patch_sha256") {
                    step.patch = Some(patch.clone());
                }
                self.steps.push(step.finish(now, false));
            }
            Event::IterationFinished {
                iteration,
                passed,
                fingerprint,
                failure,
            } => {
                if let Some(fingerprint) = fingerprint {
                    self.last_fingerprint = Some(fingerprint.clone());
                }
                if let Some(pending) = self.iteration_mut(*iteration) {
                    pending.end_at(now);
                    let attributes = &mut pending.span.attributes;
                    attributes.push(Attribute::bool("agent_orch.iteration.passed", *passed));
                    if let Some(fingerprint) = fingerprint {
                        attributes.push(Attribute::string(
                            "agent_orch.failure.fingerprint",
                            fingerprint,
                        ));
                    }
                    if let Some(failure) = failure {
                        attributes.push(Attribute::string("agent_orch.failure", failure));
                    }
                    pending.span.status = match failure {
                        None if *passed => SpanStatus::Ok,
                        None => SpanStatus::Error("failed".to_owned()),
                        Some(failure) => SpanStatus::Error(failure.clone()),
                    };
                }
            }
            Event::Decision {
                iteration,
                decision,
            } => {
                let tokens = Tokens::of(decision);
                let patch = decision.patch_sha256().map(str::to_owned);
                if let Some(open) = &mut self.open_step {
                    open.tokens.add(tokens);
                    if patch.is_some() {
                        open.patch.clone_from(&patch);
                    }
                }
                if let Some(pending) = self.iteration_mut(*iteration) {
                    pending.tokens.add(tokens);
                    if let Decision::PatchApplied { .. } = decision {
                        pending.patch.clone_from(&patch);
                    }
                }
                if let Some(run) = &mut self.run {
                    run.tokens.add(tokens);
                }
                match (decision, patch) {
                    (Decision::PatchApplied { .. }, Some(patch)) => self.kept_patches.push(patch),
                    (Decision::PatchReverted { .. }, Some(patch)) => {
                        self.kept_patches.retain(|p| *p != patch);
                    }
                    _ => {}
                }
            }
            Event::OutputsRendered { .. } => {}
            Event::RunFinished {
                outcome,
                reason,
                iterations,
                ..
            } => {
                let fingerprint = self.last_fingerprint.clone();
                let patch = self.kept_patches.last().cloned();
                if let Some(run) = &mut self.run {
                    run.end_at(now);
                    let attributes = &mut run.span.attributes;
                    attributes.extend([
                        Attribute::string("agent_orch.run.outcome", outcome.as_str()),
                        Attribute::string("agent_orch.run.reason", reason),
                        Attribute::int("agent_orch.run.iterations", *iterations),
                    ]);
                    if let Some(fingerprint) = fingerprint {
                        attributes.push(Attribute::string(
                            "agent_orch.failure.fingerprint",
                            fingerprint,
                        ));
                    }
                    run.patch = patch;
                    run.span.status = match outcome {
                        RunOutcome::Succeeded | RunOutcome::SucceededWithIssues => SpanStatus::Ok,
                        RunOutcome::Failed | RunOutcome::Interrupted => {
                            SpanStatus::Error(reason.clone())
                        }
                    };
                }
            }
        }
    }

    fn run_span_id(&self) -> Option<SpanId> {
        self.run.as_ref().map(|run| run.span.span_id)
    }

    fn iteration_mut(&mut self, iteration: u32) -> Option<&mut Pending> {
        self.iterations
            .iter_mut()
            .rev()
            .find(|(number, _)| *number == iteration)
            .map(|(_, pending)| pending)
    }

    /// The run first, then its iterations, then the steps in the order they finished. Empty
    /// when the run never started.
    fn build(&self, now: SystemTime) -> Trace {
        let Some(run) = &self.run else {
            return Trace::default();
        };
        let mut spans = vec![run.finish(now, true)];
        spans.extend(
            self.iterations
                .iter()
                .map(|(_, pending)| pending.finish(now, false)),
        );
        spans.extend(self.steps.iter().cloned());
        Trace {
            resource: self.resource.clone(),
            spans,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decision::{AgentExchange, Tokens};
    use crate::patch::EditFormat;
    use crate::report::test_events::two_iteration_run;
    use crate::telemetry::Value;

    fn trace_of(events: &[Event]) -> Trace {
        let telemetry = Telemetry::new(Exporters::default());
        let mut report = telemetry.report();
        for event in events {
            report.on_event(event).unwrap();
        }
        telemetry.trace()
    }

    fn by_name<'t>(trace: &'t Trace, name: &str) -> &'t Span {
        trace
            .spans
            .iter()
            .find(|span| span.name == name)
            .unwrap_or_else(|| panic!("no span {name}: {trace:#?}"))
    }

    fn text<'s>(span: &'s Span, key: &str) -> &'s str {
        match span.attribute(key) {
            Some(Value::String(text)) => text,
            other => panic!("{key} of {}: {other:?}", span.name),
        }
    }

    #[test]
    fn a_run_is_a_tree_of_iterations_and_steps_in_one_trace() {
        let trace = trace_of(&two_iteration_run());
        let run = &trace.spans[0];
        assert_eq!(run.name, "run fleet-deploy");
        assert_eq!(run.parent, None);
        assert!(trace.spans.iter().all(|span| span.trace_id == run.trace_id));
        let ids: std::collections::HashSet<_> = trace.spans.iter().map(|s| s.span_id).collect();
        assert_eq!(ids.len(), trace.spans.len(), "span ids are unique");

        let first = by_name(&trace, "iteration 1");
        let second = by_name(&trace, "iteration 2");
        for iteration in [first, second] {
            assert_eq!(iteration.parent, Some(run.span_id));
            assert!(iteration.start >= run.start && iteration.end <= run.end);
        }
        assert_eq!(
            text(first, "agent_orch.failure.fingerprint"),
            text(run, "agent_orch.failure.fingerprint")
        );
        assert!(matches!(first.status, SpanStatus::Error(_)));
        assert_eq!(second.status, SpanStatus::Ok);

        // Every step of the steps and repair phases hangs from its iteration.
        let steps: Vec<&Span> = trace
            .spans
            .iter()
            .filter(|span| span.name.starts_with("step "))
            .collect();
        assert!(!steps.is_empty());
        for step in steps {
            let iteration = match step.attribute("agent_orch.iteration") {
                Some(Value::Int(n)) => *n,
                other => panic!("{other:?}"),
            };
            let parent = if iteration == 1 { first } else { second };
            assert_eq!(step.parent, Some(parent.span_id), "{}", step.name);
            assert!(step.start <= step.end);
        }
        assert_eq!(text(run, "agent_orch.run.outcome"), "succeeded");
        assert_eq!(run.status, SpanStatus::Ok);
    }

    #[test]
    fn tokens_and_the_patch_land_on_the_step_its_iteration_and_the_run() {
        let at = SystemTime::UNIX_EPOCH;
        let mut fix = crate::steps::StepOutcome::passed("proposed a patch");
        fix.outputs
            .insert("patch_sha256".to_owned(), "abc123".to_owned());
        let events = vec![
            Event::RunStarted {
                run_id: "run-1".to_owned(),
                workflow: "w".to_owned(),
                workflow_path: "w.yaml".into(),
                environment: None,
                artifacts_dir: "a".into(),
                max_iterations: 3,
                at,
            },
            Event::IterationStarted { iteration: 1 },
            Event::IterationFinished {
                iteration: 1,
                passed: false,
                fingerprint: Some("fp-1".to_owned()),
                failure: Some("steps/test: exit code 1".to_owned()),
            },
            Event::StepStarted {
                iteration: 1,
                phase: Phase::Repair,
                step_id: "fix".to_owned(),
                step_name: "fix".to_owned(),
                kind: "fix",
                index: 1,
                total: 1,
            },
            Event::Decision {
                iteration: 1,
                decision: Decision::FixProposal {
                    exchange: AgentExchange {
                        agent: "fixer".to_owned(),
                        model: "gpt-4o".to_owned(),
                        prompt: "fix it".to_owned(),
                        prompt_hash: "9f1c".to_owned(),
                        response: "a diff".to_owned(),
                        tokens: Tokens {
                            prompt: 100,
                            completion: 20,
                            estimated: false,
                        },
                        summary: "proposed a patch".to_owned(),
                    },
                    edit_format: EditFormat::Unified,
                },
            },
            Event::Decision {
                iteration: 1,
                decision: Decision::PatchApplied {
                    patch_sha256: "abc123".to_owned(),
                    files: Vec::new(),
                    diff: "patches/iteration-1.diff".to_owned(),
                    diff_written: None,
                    summary: "applied patches/iteration-1.diff".to_owned(),
                },
            },
            Event::StepFinished {
                iteration: 1,
                phase: Phase::Repair,
                step_id: "fix".to_owned(),
                step_name: "fix".to_owned(),
                kind: "fix",
                required: true,
                duration: std::time::Duration::from_millis(5),
                outcome: Arc::new(fix),
            },
            Event::RunFinished {
                outcome: RunOutcome::Failed,
                reason: "no progress".to_owned(),
                iterations: 1,
                duration: std::time::Duration::from_secs(1),
            },
        ];
        let trace = trace_of(&events);
        let run = &trace.spans[0];
        let iteration = by_name(&trace, "iteration 1");
        let fix = by_name(&trace, "step fix");
        for span in [run, iteration, fix] {
            assert_eq!(
                span.attribute("agent_orch.tokens.total"),
                Some(&Value::Int(120)),
                "{}",
                span.name
            );
            assert_eq!(
                text(span, "agent_orch.patch.sha256"),
                "abc123",
                "{}",
                span.name
            );
        }
        assert_eq!(fix.parent, Some(iteration.span_id));
        assert_eq!(text(fix, "agent_orch.step.phase"), "repair");
        assert_eq!(run.status, SpanStatus::Error("no progress".to_owned()));
        assert_eq!(text(run, "agent_orch.failure.fingerprint"), "fp-1");
    }

    #[test]
    fn a_caller_traceparent_makes_the_run_its_child() {
        let exporters = Exporters {
            parent: Some(([7; 16], [9; 8])),
            ..Exporters::default()
        };
        let telemetry = Telemetry::new(exporters);
        let mut report = telemetry.report();
        for event in two_iteration_run() {
            report.on_event(&event).unwrap();
        }
        let trace = telemetry.trace();
        assert_eq!(trace.spans[0].parent, Some([9; 8]));
        assert!(trace.spans.iter().all(|span| span.trace_id == [7; 16]));
    }

    #[test]
    fn no_run_no_trace() {
        assert!(trace_of(&[]).spans.is_empty());
    }
}
