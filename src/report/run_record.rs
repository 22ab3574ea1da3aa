//! [`RunRecord`]: the run rebuilt from its events, for the reports written as a whole
//! (JUnit, metrics, summary) rather than line by line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::engine::decision::Decision;
use crate::engine::events::{Event, RunOutcome};
use crate::steps::{StepOutcome, StepStatus};
use crate::workflow::model::Phase;

/// Everything the events have said about a run so far.
#[derive(Debug, Default)]
pub(crate) struct RunRecord {
    pub(crate) start: Option<RunStart>,
    pub(crate) iterations: Vec<IterationRecord>,
    pub(crate) decisions: Vec<DecisionRecord>,
    pub(crate) end: Option<RunEnd>,
    /// When `RunStarted` arrived here: measures a run that never sent `RunFinished`.
    started_instant: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct RunStart {
    pub(crate) run_id: String,
    pub(crate) workflow: String,
    pub(crate) environment: Option<String>,
    pub(crate) artifacts_dir: PathBuf,
    pub(crate) max_iterations: u32,
    pub(crate) at: SystemTime,
}

#[derive(Debug)]
pub(crate) struct IterationRecord {
    pub(crate) number: u32,
    pub(crate) steps: Vec<StepRecord>,
    /// Steps that started and have not finished (yet, or ever: a crash or Ctrl-C).
    pub(crate) unfinished: Vec<UnfinishedStep>,
    pub(crate) result: Option<IterationResult>,
}

#[derive(Debug)]
pub(crate) struct StepRecord {
    pub(crate) phase: Phase,
    pub(crate) step_id: String,
    pub(crate) step_name: String,
    pub(crate) required: bool,
    pub(crate) duration: Duration,
    pub(crate) outcome: Arc<StepOutcome>,
}

impl StepRecord {
    /// Failed or inconclusive: what a report counts as a failure, required or not.
    pub(crate) fn is_failure(&self) -> bool {
        matches!(
            self.outcome.status,
            StepStatus::Failed | StepStatus::Inconclusive
        )
    }
}

#[derive(Debug)]
pub(crate) struct UnfinishedStep {
    pub(crate) phase: Phase,
    pub(crate) step_id: String,
    pub(crate) step_name: String,
}

#[derive(Debug)]
pub(crate) struct IterationResult {
    pub(crate) passed: bool,
    pub(crate) fingerprint: Option<String>,
    pub(crate) failure: Option<String>,
}

#[derive(Debug)]
pub(crate) struct DecisionRecord {
    pub(crate) iteration: u32,
    pub(crate) decision: Decision,
}

#[derive(Debug)]
pub(crate) struct RunEnd {
    pub(crate) outcome: RunOutcome,
    pub(crate) reason: String,
    pub(crate) iterations: u32,
    pub(crate) duration: Duration,
}

impl RunRecord {
    pub(crate) fn apply(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                workflow,
                environment,
                artifacts_dir,
                max_iterations,
                at,
                ..
            } => {
                self.start = Some(RunStart {
                    run_id: run_id.clone(),
                    workflow: workflow.clone(),
                    environment: environment.clone(),
                    artifacts_dir: artifacts_dir.clone(),
                    max_iterations: *max_iterations,
                    at: *at,
                });
                self.started_instant = Some(Instant::now());
            }
            Event::IterationStarted { iteration } => {
                self.iteration_mut(*iteration);
            }
            Event::StepStarted {
                iteration,
                phase,
                step_id,
                step_name,
                ..
            } => self
                .iteration_mut(*iteration)
                .unfinished
                .push(UnfinishedStep {
                    phase: *phase,
                    step_id: step_id.clone(),
                    step_name: step_name.clone(),
                }),
            Event::StepFinished {
                iteration,
                phase,
                step_id,
                step_name,
                required,
                duration,
                outcome,
                ..
            } => {
                let record = self.iteration_mut(*iteration);
                record
                    .unfinished
                    .retain(|step| !(step.phase == *phase && step.step_id == *step_id));
                record.steps.push(StepRecord {
                    phase: *phase,
                    step_id: step_id.clone(),
                    step_name: step_name.clone(),
                    required: *required,
                    duration: *duration,
                    outcome: Arc::clone(outcome),
                });
            }
            Event::IterationFinished {
                iteration,
                passed,
                fingerprint,
                failure,
            } => {
                self.iteration_mut(*iteration).result = Some(IterationResult {
                    passed: *passed,
                    fingerprint: fingerprint.clone(),
                    failure: failure.clone(),
                });
            }
            Event::Decision {
                iteration,
                decision,
            } => self.decisions.push(DecisionRecord {
                iteration: *iteration,
                decision: decision.clone(),
            }),
            // `outputs.json` holds them; the summary is about how the run went.
            Event::OutputsRendered { .. } => {}
            Event::RunFinished {
                outcome,
                reason,
                iterations,
                duration,
            } => {
                self.end = Some(RunEnd {
                    outcome: *outcome,
                    reason: reason.clone(),
                    iterations: *iterations,
                    duration: *duration,
                });
            }
        }
    }

    /// How the run ended; a run that never sent `RunFinished` (killed, crashed, or still
    /// running when reports are forced out) counts as interrupted.
    pub(crate) fn outcome(&self) -> RunOutcome {
        self.end
            .as_ref()
            .map_or(RunOutcome::Interrupted, |end| end.outcome)
    }

    pub(crate) fn reason(&self) -> &str {
        self.end
            .as_ref()
            .map_or("the run stopped before it finished", |end| {
                end.reason.as_str()
            })
    }

    pub(crate) fn iteration_count(&self) -> u32 {
        self.end.as_ref().map_or_else(
            || self.iterations.iter().map(|i| i.number).max().unwrap_or(0),
            |end| end.iterations,
        )
    }

    pub(crate) fn duration(&self) -> Duration {
        match (&self.end, self.started_instant) {
            (Some(end), _) => end.duration,
            (None, Some(started)) => started.elapsed(),
            (None, None) => Duration::ZERO,
        }
    }

    pub(crate) fn workflow(&self) -> &str {
        self.start
            .as_ref()
            .map_or("workflow", |start| start.workflow.as_str())
    }

    /// Every finished step of every iteration, in the order they finished.
    pub(crate) fn steps(&self) -> impl Iterator<Item = (u32, &StepRecord)> {
        self.iterations
            .iter()
            .flat_map(|iteration| iteration.steps.iter().map(|step| (iteration.number, step)))
    }

    fn iteration_mut(&mut self, number: u32) -> &mut IterationRecord {
        let index = match self.iterations.iter().position(|i| i.number == number) {
            Some(index) => index,
            None => {
                self.iterations.push(IterationRecord {
                    number,
                    steps: Vec::new(),
                    unfinished: Vec::new(),
                    result: None,
                });
                self.iterations.len() - 1
            }
        };
        &mut self.iterations[index]
    }
}
