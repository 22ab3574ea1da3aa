//! The repair phase: what `fix` and `review` steps do, and the state a run keeps between
//! repair attempts.
//!
//! ```text
//! required failure ──▶ fix: fixer agent ─▶ patch::parse_reply ─▶ Policy::check ─▶ plan (dry run)
//!                        │ unusable (no diff, denied, does not apply): the step fails and the
//!                        │ reason goes to the next fix attempt, once
//!                        │ needs approval without `--approve`: the run stops
//!                        ▼
//!                      review: reviewer agent ─▶ approved: apply atomically,
//!                                                 `patches/iteration-N.diff`
//!                                             └▶ rejected: the suggestion goes to the next fix
//! next iteration fails ─▶ same fingerprint, or worse (more failing steps, or fewer passing):
//!                         the patch is reverted and the fixer is told
//! ```
//!
//! A workflow with a `fix` step and no `review` step applies a patch as soon as the policy
//! allows it. No model output reaches the disk without the policy's `allow`: the decision is
//! checked again right before applying. The run's token budget (`safety.budget.tokens`) is
//! checked after every LLM call; a run over budget stops. Every prompt (redacted), reply,
//! verdict, policy decision and applied or reverted patch (with hashes) is an
//! `Event::Decision`, and so lands in `audit.jsonl`; the token usage of each call goes to
//! `metrics.json` through the same events.
//!
//! The parts: `agents` builds the agents and is the one way to ask one (build, ask, audit,
//! budget); `fix` and `review` are the two steps; `apply` puts an allowed patch on disk;
//! `progress` judges it at the next iteration and reverts it when it did not help.

mod agents;
mod apply;
mod fix;
mod progress;
mod review;

use self::agents::Agents;
use crate::engine::decision::{Decision, StopCause};
use crate::engine::events::Event;
use crate::engine::reporter::Reporter;
use crate::engine::settings::RunSettings;
use crate::llm::{Failure, step_definition};
use crate::patch::{AppliedPatch, Patch, PolicyDecision};
use crate::redact::Redactor;
use crate::steps::pull_request::DeliveredPatch;
use crate::steps::{StepOutcome, StepStatus};
use crate::workflow::model::{Step, Workflow};

/// Why the repair phase ends the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairStop {
    /// A patch that needs approval, the token budget, or an agent that cannot be built.
    pub cause: StopCause,
    pub reason: String,
}

/// How far an iteration got: the measure of progress between a patch and the next run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IterationState {
    pub fingerprint: String,
    /// Required and optional steps that failed.
    pub failing_steps: usize,
    pub passed_steps: usize,
}

/// The failure being repaired, as the agents are told about it.
struct Target {
    failure: Failure,
    step_definition: String,
}

/// A patch that passed the policy and fits the files, waiting for the reviewer.
struct Proposal {
    patch: Patch,
    decision: PolicyDecision,
    diff: String,
}

/// The patch applied by the last repair phase, kept until the next iteration says whether it
/// helped.
struct Applied {
    patch: AppliedPatch,
    iteration: u32,
    before: IterationState,
    /// Index of its diff in `previous_patches`, to mark it reverted.
    diff_index: usize,
}

/// The repair state of one run (engine-owned).
pub struct Repair<'a> {
    workflow: &'a Workflow,
    settings: &'a RunSettings,
    /// Built from the run's secrets and the environment; moved into the session once built.
    redactor: Option<Redactor>,
    agents: Option<Agents>,
    target: Option<Target>,
    proposal: Option<Proposal>,
    /// Diffs proposed earlier in the run, oldest first (reverted ones say so).
    previous_patches: Vec<String>,
    suggestion: Option<String>,
    /// Why the last proposal could not be used; told to the next fix attempt, once.
    feedback: Option<String>,
    applied: Option<Applied>,
    /// Every patch applied and not reverted, oldest first: what a pull request delivers.
    delivered: Vec<DeliveredPatch>,
    /// How the iteration being repaired ended, the baseline for the next one.
    current: Option<IterationState>,
    /// Whether the last repair phase changed the files (`None`: no repair phase yet).
    last_phase_applied: Option<bool>,
    stop: Option<RepairStop>,
}

impl<'a> Repair<'a> {
    /// `redactor` is the run's: what it knows never reaches a prompt.
    pub fn new(workflow: &'a Workflow, settings: &'a RunSettings, redactor: Redactor) -> Self {
        Self {
            workflow,
            settings,
            redactor: Some(redactor),
            agents: None,
            target: None,
            proposal: None,
            previous_patches: Vec::new(),
            suggestion: None,
            feedback: None,
            applied: None,
            delivered: Vec::new(),
            current: None,
            last_phase_applied: None,
            stop: None,
        }
    }

    /// Called when an iteration failed, before any stop decision: judges the patch applied
    /// after the previous iteration (reverting it when it did not help) and takes this
    /// failure as the one to repair, unless the revert brought back the earlier one.
    pub fn after_failed_iteration(
        &mut self,
        iteration: u32,
        state: IterationState,
        step: &Step,
        outcome: &StepOutcome,
        reporter: &mut dyn Reporter,
    ) {
        let reverted = self.judge_progress(iteration, &state, reporter);
        if !reverted || self.target.is_none() {
            self.target = Some(Target {
                failure: Failure::from_outcome(step, outcome),
                step_definition: step_definition(step),
            });
        }
        if !reverted {
            self.current = Some(state);
        }
    }

    /// Whether the repair phase before this iteration left the files as they were, so that
    /// seeing the same failure again says nothing about progress.
    pub fn last_phase_changed_nothing(&self) -> bool {
        self.last_phase_applied == Some(false)
    }

    pub fn begin_phase(&mut self) {
        self.proposal = None;
        self.last_phase_applied = Some(false);
    }

    pub fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    pub fn take_stop(&mut self) -> Option<RepairStop> {
        self.stop.take()
    }

    /// The patches applied and still in the files, oldest first.
    pub fn delivered_patches(&self) -> &[DeliveredPatch] {
        &self.delivered
    }
}

/// The outcome of a repair step after the phase decided to stop the run.
fn stopping() -> StepOutcome {
    StepOutcome::new(StepStatus::Skipped, "skipped: the run is stopping")
}

fn emit(reporter: &mut dyn Reporter, iteration: u32, decision: Decision) {
    // As in the engine: a reporter that cannot write must not stop a repair half-way.
    let _ = reporter.on_event(&Event::Decision {
        iteration,
        decision,
    });
}

fn failed_with(mut outcome: StepOutcome, message: String) -> StepOutcome {
    outcome.status = StepStatus::Failed;
    outcome.message = message;
    outcome
}

fn file_list(files: &[String]) -> String {
    let quoted: Vec<String> = files.iter().map(|f| format!("`{f}`")).collect();
    quoted.join(", ")
}
