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

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::events::Event;
use super::patch_policy::policy_config;
use super::reporter::Reporter;
use super::settings::RunSettings;
use crate::llm::{
    Agent, AgentSetup, Failure, FixContext, LlmError, LlmErrorKind, LlmSession, ReviewContext,
    TokenBudget, Usage, step_definition,
};
use crate::patch::{self, AppliedPatch, Patch, Policy, PolicyDecision, Workspace};
use crate::redact::Redactor;
use crate::steps::pull_request::DeliveredPatch;
use crate::steps::{StepOutcome, StepStatus, fix, review};
use crate::workflow::model::{Step, StepKind, Workflow};
use crate::workflow::step_config::fix::FixConfig;
use crate::workflow::step_config::review::ReviewConfig;
use crate::workflow::template::Renderer;

/// Why the repair phase ends the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairStop {
    /// `approval_required`, `budget` or `agent` (an agent that cannot be built).
    pub kind: &'static str,
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

struct Agents {
    session: Arc<LlmSession>,
    by_name: HashMap<String, Agent>,
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

    /// Runs a `fix` or `review` step.
    pub async fn run_step(
        &mut self,
        step: &Step,
        iteration: u32,
        renderer: &Renderer,
        cancel: &CancellationToken,
        reporter: &mut dyn Reporter,
    ) -> StepOutcome {
        if self.stopped() {
            return StepOutcome::new(StepStatus::Skipped, "skipped: the run is stopping");
        }
        match &step.kind {
            StepKind::Fix(config) => {
                self.fix(config, iteration, renderer, cancel, reporter)
                    .await
            }
            StepKind::Review(config) => {
                self.review(config, iteration, renderer, cancel, reporter)
                    .await
            }
            other => StepOutcome::failed(format!("`{}` is not a repair step kind", other.key())),
        }
    }
}

impl Repair<'_> {
    async fn fix(
        &mut self,
        config: &FixConfig,
        iteration: u32,
        renderer: &Renderer,
        cancel: &CancellationToken,
        reporter: &mut dyn Reporter,
    ) -> StepOutcome {
        let Some(target) = &self.target else {
            return StepOutcome::failed("no failure to repair: `fix` steps run in `repair:`");
        };
        let context = FixContext {
            failure: target.failure.clone(),
            step_definition: target.step_definition.clone(),
            workdir: self.settings.workdir.clone(),
            iteration,
            previous_patches: self.previous_patches.clone(),
            // Both are told once: the next attempt starts from what this one learns.
            reviewer_suggestion: self.suggestion.take(),
            apply_error: self.feedback.take(),
        };
        let agent_name = &config.agent.value;
        let agent = match self.agent(agent_name, renderer) {
            Ok(agent) => agent,
            Err(reason) => return StepOutcome::failed(reason),
        };
        let (mut outcome, result) = fix::run(agent, &context, cancel).await;
        let proposal = match result {
            None => return outcome,
            Some(Ok(proposal)) => proposal,
            Some(Err(err)) => {
                self.stop_if_refused_for_budget(&err);
                return outcome;
            }
        };
        let redactor = self.redactor_of_session();
        emit(
            reporter,
            iteration,
            "fix.proposal",
            json!({
                "agent": agent_name,
                "model": proposal.model,
                "prompt": proposal.prompt,
                "prompt_hash": proposal.prompt_hash,
                "response": redactor.redact(&proposal.reply),
                "edit_format": proposal.edit_format,
                "tokens": tokens(proposal.usage),
                "summary": outcome.message,
            }),
        );
        if self.check_budget() {
            return failed_with(outcome, self.stop_reason());
        }

        let workspace = match Workspace::new(&self.settings.workdir) {
            Ok(workspace) => workspace,
            Err(err) => return failed_with(outcome, err.to_string()),
        };
        let parsed = match patch::parse_reply(&proposal.reply, proposal.accepts, &workspace) {
            Ok(parsed) => parsed,
            Err(err) => {
                let reason = err.to_string();
                self.unusable(iteration, "parse", &reason, None, reporter);
                return failed_with(outcome, reason);
            }
        };
        let (patch, edit_format) = (parsed.patch, parsed.format);
        let diff = patch.to_unified();
        self.previous_patches.push(diff.clone());
        let policy = match Policy::new(policy_config(self.workflow, self.settings)) {
            Ok(policy) => policy,
            Err(err) => return failed_with(outcome, err.to_string()),
        };
        let decision = policy.check(&patch, &workspace, self.settings.approve);
        let summary = decision.summary();
        emit(
            reporter,
            iteration,
            "policy.decision",
            json!({ "decision": decision, "edit_format": edit_format, "summary": summary }),
        );
        match decision.verdict {
            patch::Verdict::Allow => {}
            patch::Verdict::Deny => {
                // No reviewer sees a denied patch; the fixer hears why, once.
                self.feedback = Some(summary.clone());
                return failed_with(outcome, summary);
            }
            patch::Verdict::NeedsApproval => {
                let reason = approval_reason(&decision);
                self.stop = Some(RepairStop {
                    kind: "approval_required",
                    reason: reason.clone(),
                });
                return failed_with(outcome, reason);
            }
        }
        // A dry run of the patch: one that does not fit the files goes back to the fixer
        // instead of wasting the reviewer's time.
        if let Err(err) = patch::plan(&patch, &workspace) {
            let reason = err.to_string();
            self.unusable(iteration, "apply", &reason, Some(&decision), reporter);
            self.feedback = Some(apply_feedback(&err));
            return failed_with(outcome, reason);
        }
        let (added, removed) = patch.changed_line_counts();
        outcome.message = format!(
            "proposed a patch to {} (+{added} -{removed}); {}",
            file_list(&decision.files),
            first_line(&summary),
        );
        outcome
            .outputs
            .insert("patch_sha256".to_owned(), decision.patch_sha256.clone());
        self.proposal = Some(Proposal {
            patch,
            decision,
            diff,
        });
        if !self.has_review_step() {
            if let Err(reason) = self.apply_proposal(iteration, None, reporter) {
                return failed_with(outcome, reason);
            }
            outcome.message.push_str("; applied (no review step)");
        }
        outcome
    }

    async fn review(
        &mut self,
        config: &ReviewConfig,
        iteration: u32,
        renderer: &Renderer,
        cancel: &CancellationToken,
        reporter: &mut dyn Reporter,
    ) -> StepOutcome {
        let (Some(target), Some(proposal)) = (&self.target, &self.proposal) else {
            return StepOutcome::failed("no patch to review: no `fix` step proposed one");
        };
        let context = ReviewContext {
            failure: target.failure.clone(),
            step_definition: target.step_definition.clone(),
            iteration,
            patch: proposal.diff.clone(),
            policy: proposal.decision.summary(),
        };
        let agent_name = &config.agent.value;
        let agent = match self.agent(agent_name, renderer) {
            Ok(agent) => agent,
            Err(reason) => return StepOutcome::failed(reason),
        };
        let (mut outcome, result) = review::run(agent, &context, cancel).await;
        let verdict = match result {
            None => return outcome,
            Some(Ok(verdict)) => verdict,
            Some(Err(err)) => {
                self.stop_if_refused_for_budget(&err);
                return outcome;
            }
        };
        let redactor = self.redactor_of_session();
        emit(
            reporter,
            iteration,
            "review.verdict",
            json!({
                "agent": agent_name,
                "model": verdict.model,
                "prompt": verdict.prompt,
                "prompt_hash": verdict.prompt_hash,
                "response": redactor.redact(&verdict.reply),
                "verdict": verdict.verdict,
                "structured": verdict.structured,
                "patch_sha256": self.proposal.as_ref().map(|p| p.decision.patch_sha256.clone()),
                "tokens": tokens(verdict.usage),
                "summary": outcome.message,
            }),
        );
        if self.check_budget() {
            return failed_with(outcome, self.stop_reason());
        }
        if !verdict.verdict.approved {
            self.proposal = None;
            // Without a suggestion, the reason is what the next attempt should address.
            let advice = verdict
                .verdict
                .suggestion
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| verdict.verdict.reason.clone());
            self.suggestion = Some(advice);
            return outcome;
        }
        match self.apply_proposal(iteration, Some(verdict.verdict.reason.clone()), reporter) {
            Ok(path) => {
                outcome.message.push_str(&format!("; applied `{path}`"));
                outcome
            }
            Err(reason) => failed_with(outcome, reason),
        }
    }

    /// Applies the approved proposal atomically, writes its diff, and records it with the
    /// reviewer's reason (`None`: no review step). The error is the reason, already kept for
    /// the next fix attempt.
    fn apply_proposal(
        &mut self,
        iteration: u32,
        verdict: Option<String>,
        reporter: &mut dyn Reporter,
    ) -> Result<String, String> {
        let Some(proposal) = self.proposal.take() else {
            return Err("no patch to apply".to_owned());
        };
        // The policy's decision gates the disk, whatever any model said.
        if !proposal.decision.allowed() {
            return Err(proposal.decision.summary());
        }
        let applied = Workspace::new(&self.settings.workdir)
            .map_err(|err| (err.to_string(), None))
            .and_then(|workspace| {
                patch::apply(&proposal.patch, &workspace)
                    .map_err(|err| (err.to_string(), Some(apply_feedback(&err))))
            });
        let applied = match applied {
            Ok(applied) => applied,
            Err((reason, feedback)) => {
                self.unusable(
                    iteration,
                    "apply",
                    &reason,
                    Some(&proposal.decision),
                    reporter,
                );
                if feedback.is_some() {
                    self.feedback = feedback;
                }
                return Err(reason);
            }
        };
        let relative = format!("patches/iteration-{iteration}.diff");
        let diff_path = self.settings.artifacts_dir.join(&relative);
        let redacted = self
            .redactor_of_session()
            .redact(&proposal.diff)
            .into_owned();
        let written = diff_path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&diff_path, &redacted));
        emit(
            reporter,
            iteration,
            "patch.applied",
            json!({
                "patch_sha256": applied.patch_sha256,
                "files": applied.files,
                "diff": relative,
                "diff_written": written.as_ref().err().map(ToString::to_string),
                "summary": format!(
                    "applied {} to {}",
                    relative,
                    file_list(&applied.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>())
                ),
            }),
        );
        self.delivered.push(DeliveredPatch {
            iteration,
            fixed: self
                .target
                .as_ref()
                .map(|t| format!("{}: {}", t.failure.step_id, t.failure.message))
                .unwrap_or_default(),
            files: applied.files.iter().map(|f| f.path.clone()).collect(),
            diff: redacted,
            diff_path: relative.clone(),
            patch_sha256: applied.patch_sha256.clone(),
            verdict,
        });
        self.applied = Some(Applied {
            patch: applied,
            iteration,
            before: self.current.clone().unwrap_or_default(),
            diff_index: self.previous_patches.len().saturating_sub(1),
        });
        self.last_phase_applied = Some(true);
        Ok(relative)
    }

    /// Reverts the last applied patch when `now` is no better than before it. Returns whether
    /// it reverted.
    fn judge_progress(
        &mut self,
        iteration: u32,
        now: &IterationState,
        reporter: &mut dyn Reporter,
    ) -> bool {
        let Some(applied) = self.applied.take() else {
            return false;
        };
        let before = &applied.before;
        let why = if now.fingerprint == before.fingerprint {
            Some("the failure did not change (same fingerprint)".to_owned())
        } else if now.failing_steps > before.failing_steps {
            Some(format!(
                "more steps fail ({} instead of {})",
                now.failing_steps, before.failing_steps
            ))
        } else if now.passed_steps < before.passed_steps {
            Some(format!(
                "fewer steps pass ({} instead of {})",
                now.passed_steps, before.passed_steps
            ))
        } else {
            None
        };
        let Some(why) = why else {
            emit(
                reporter,
                iteration,
                "patch.kept",
                json!({
                    "patch_sha256": applied.patch.patch_sha256,
                    "summary": format!(
                        "kept the patch of iteration {}: the failure changed",
                        applied.iteration
                    ),
                }),
            );
            return false;
        };
        match applied.patch.revert() {
            Ok(()) => {
                self.delivered.retain(|p| p.iteration != applied.iteration);
                let note = format!(
                    "(applied in iteration {} and reverted: {why})",
                    applied.iteration
                );
                if let Some(diff) = self.previous_patches.get_mut(applied.diff_index) {
                    *diff = format!("{note}\n{diff}");
                }
                emit(
                    reporter,
                    iteration,
                    "patch.reverted",
                    json!({
                        "patch_sha256": applied.patch.patch_sha256,
                        "files": applied.patch.files,
                        "reason": why,
                        "summary": format!(
                            "reverted the patch of iteration {}: {why}",
                            applied.iteration
                        ),
                    }),
                );
                self.current = Some(applied.before);
                true
            }
            Err(err) => {
                emit(
                    reporter,
                    iteration,
                    "patch.revert_failed",
                    json!({
                        "patch_sha256": applied.patch.patch_sha256,
                        "error": err.to_string(),
                        "summary": format!(
                            "could not revert the patch of iteration {} ({why}): {err}",
                            applied.iteration
                        ),
                    }),
                );
                false
            }
        }
    }

    /// A proposal that cannot be used: audited, and its reason kept for the next attempt.
    fn unusable(
        &mut self,
        iteration: u32,
        stage: &str,
        reason: &str,
        decision: Option<&PolicyDecision>,
        reporter: &mut dyn Reporter,
    ) {
        self.feedback = Some(reason.to_owned());
        emit(
            reporter,
            iteration,
            "patch.unusable",
            json!({
                "stage": stage,
                "patch_sha256": decision.map(|d| d.patch_sha256.clone()),
                "reason": reason,
            }),
        );
    }

    /// The agent `name`, built on first use. An agent that cannot be built stops the run: no
    /// later iteration would build it either.
    fn agent(&mut self, name: &str, renderer: &Renderer) -> Result<&Agent, String> {
        let fail = |this: &mut Self, err: &dyn std::fmt::Display| {
            let reason = err.to_string();
            this.stop = Some(RepairStop {
                kind: "agent",
                reason: reason.clone(),
            });
            reason
        };
        if self.agents.is_none() {
            let redactor = self.redactor.take().unwrap_or_default();
            let budget = TokenBudget::new(self.workflow.safety.budget.tokens);
            match LlmSession::new(redactor, budget, self.settings.tape.clone()) {
                Ok(session) => {
                    self.agents = Some(Agents {
                        session,
                        by_name: HashMap::new(),
                    });
                }
                Err(err) => return Err(fail(self, &err)),
            }
        }
        let Some(agents) = self.agents.as_mut() else {
            return Err("no LLM session".to_owned());
        };
        if !agents.by_name.contains_key(name) {
            let Some(config) = self.workflow.agents.get(name) else {
                let err = format!("unknown agent `{name}`");
                return Err(fail(self, &err));
            };
            let env = |var: &str| std::env::var(var).ok();
            let setup = AgentSetup {
                renderer,
                workflow_dir: self.workflow.dir(),
                env: &env,
            };
            match agents.session.agent(name, config, &setup) {
                Ok(agent) => {
                    agents.by_name.insert(name.to_owned(), agent);
                }
                Err(err) => return Err(fail(self, &err)),
            }
        }
        self.agents
            .as_ref()
            .and_then(|agents| agents.by_name.get(name))
            .ok_or_else(|| format!("agent `{name}` is not available"))
    }

    fn redactor_of_session(&self) -> Redactor {
        self.agents
            .as_ref()
            .map(|agents| agents.session.redactor().clone())
            .or_else(|| self.redactor.clone())
            .unwrap_or_default()
    }

    /// After an LLM call: stops the run once the reported usage reaches the budget.
    fn check_budget(&mut self) -> bool {
        let Some(agents) = &self.agents else {
            return false;
        };
        let budget = agents.session.budget();
        let (Some(limit), used) = (budget.limit(), budget.used().total_tokens) else {
            return false;
        };
        if used < limit {
            return false;
        }
        self.stop = Some(RepairStop {
            kind: "budget",
            reason: format!("token budget used up: {used} of {limit} tokens"),
        });
        true
    }

    /// A call refused before it was sent, because the budget could not pay for it.
    fn stop_if_refused_for_budget(&mut self, err: &LlmError) {
        if let LlmErrorKind::BudgetExhausted { used, limit } = err.kind {
            self.stop = Some(RepairStop {
                kind: "budget",
                reason: format!(
                    "token budget used up: {used} of {limit} tokens, not enough for the next request"
                ),
            });
        }
    }

    fn stop_reason(&self) -> String {
        self.stop
            .as_ref()
            .map(|stop| stop.reason.clone())
            .unwrap_or_default()
    }

    fn has_review_step(&self) -> bool {
        self.workflow
            .repair
            .iter()
            .any(|step| matches!(step.kind, StepKind::Review(_)))
    }
}

/// What the next fix attempt hears about a patch that does not fit the files: the reason
/// for each hunk, and the file's current lines where each hunk that did not match was meant
/// to go, numbered, so the next attempt can copy its context from them. The prompt quotes all
/// of it as one untrusted block (a file's content is data, never instructions).
fn apply_feedback(error: &patch::ApplyError) -> String {
    let mut text = error.to_string();
    let patch::ApplyErrorKind::Rejected(failures) = &error.kind else {
        return text;
    };
    for failure in failures {
        let which = match &failure.hunk {
            Some((index, header)) => format!("hunk {index} (`{header}`)"),
            None => "the change".to_owned(),
        };
        for region in &failure.regions {
            let last = region.first_line + region.lines.len().saturating_sub(1);
            text.push_str(&format!(
                "\n\nLines {}-{last} of `{}` as they are now, where {which} was meant to go:\n{}",
                region.first_line,
                failure.file,
                region.numbered(),
            ));
        }
    }
    text
}

fn emit(reporter: &mut dyn Reporter, iteration: u32, kind: &str, detail: Value) {
    // As in the engine: a reporter that cannot write must not stop a repair half-way.
    let _ = reporter.on_event(&Event::Decision {
        iteration,
        kind: kind.to_owned(),
        detail,
    });
}

/// The `tokens` object `metrics.json` sums.
fn tokens(usage: Usage) -> Value {
    json!({
        "prompt": usage.prompt_tokens,
        "completion": usage.completion_tokens,
        "estimated": usage.estimated,
    })
}

fn failed_with(mut outcome: StepOutcome, message: String) -> StepOutcome {
    outcome.status = StepStatus::Failed;
    outcome.message = message;
    outcome
}

/// The stop message for a patch that needs a human: each pattern, and the file and line it
/// was found in.
fn approval_reason(decision: &PolicyDecision) -> String {
    let matches: Vec<String> = decision
        .violations
        .iter()
        .filter(|v| v.rule == patch::Rule::RequireConfirmation)
        .map(|v| {
            let place = match v.line {
                Some(line) => format!("{}:{line}", v.file),
                None => v.file.clone(),
            };
            format!(
                "`{}` in `{place}`",
                v.pattern
                    .as_deref()
                    .unwrap_or("a require_confirmation pattern")
            )
        })
        .collect();
    format!(
        "the proposed patch needs human approval: {} matches `safety.require_confirmation`; \
         rerun with `--approve` (the task input `approveDangerousChanges` in a pipeline) to \
         allow it",
        matches.join(", ")
    )
}

fn file_list(files: &[String]) -> String {
    let quoted: Vec<String> = files.iter().map(|f| format!("`{f}`")).collect();
    quoted.join(", ")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::{Rule, RuleCheck, Verdict, Violation};

    #[test]
    fn the_approval_stop_names_each_pattern_and_where_it_matched() {
        let violation = |file: &str, line, pattern: &str| Violation {
            rule: Rule::RequireConfirmation,
            file: file.to_owned(),
            line,
            pattern: Some(pattern.to_owned()),
            message: String::new(),
        };
        let decision = PolicyDecision {
            verdict: Verdict::NeedsApproval,
            human_approved: false,
            patch_sha256: String::new(),
            files: vec!["db/clean.sql".to_owned()],
            lines_added: 2,
            lines_removed: 0,
            rules: vec![RuleCheck {
                rule: Rule::RequireConfirmation,
                passed: false,
            }],
            violations: vec![
                violation("db/clean.sql", Some(4), "DROP"),
                violation("run.sh", None, "rm -rf"),
            ],
        };
        assert_eq!(
            approval_reason(&decision),
            "the proposed patch needs human approval: `DROP` in `db/clean.sql:4`, `rm -rf` in \
             `run.sh` matches `safety.require_confirmation`; rerun with `--approve` (the task \
             input `approveDangerousChanges` in a pipeline) to allow it"
        );
    }
}
