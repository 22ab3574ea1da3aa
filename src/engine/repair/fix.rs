//! The `fix` step: asks the fixer for a patch, parses it, checks it against the policy and
//! plans it (a dry run), then hands it to the reviewer, or applies it when the workflow has no
//! `review` step.

use tokio_util::sync::CancellationToken;

use super::agents::Ask;
use super::apply::apply_feedback;
use super::{Proposal, Repair, RepairStop, emit, failed_with, file_list};
use crate::engine::decision::{Decision, PatchStage, StopCause};
use crate::engine::patch_policy::policy_config;
use crate::engine::reporter::Reporter;
use crate::llm::{FixContext, FixProposal};
use crate::patch::{self, Policy, PolicyDecision, Workspace};
use crate::steps::StepOutcome;
use crate::workflow::model::StepKind;
use crate::workflow::step_config::fix::FixConfig;
use crate::workflow::template::Renderer;

impl Repair<'_> {
    /// Runs a `fix` step (`steps::fix`, through the engine's `RunState`); once the run is
    /// stopping it asks no agent.
    pub(in crate::engine) async fn fix(
        &mut self,
        config: &FixConfig,
        iteration: u32,
        renderer: &Renderer,
        cancel: &CancellationToken,
        reporter: &mut dyn Reporter,
    ) -> StepOutcome {
        if self.stopped() {
            return super::stopping();
        }
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
        let ask = Ask {
            agent: &config.agent.value,
            question: &context,
            iteration,
        };
        let decision = |exchange, proposal: &FixProposal| Decision::FixProposal {
            exchange,
            edit_format: proposal.edit_format,
        };
        let (mut outcome, proposal) =
            match self.ask(ask, renderer, cancel, reporter, decision).await {
                Ok(asked) => asked,
                Err(outcome) => return outcome,
            };

        let workspace = match Workspace::new(&self.settings.workdir) {
            Ok(workspace) => workspace,
            Err(err) => return failed_with(outcome, err.to_string()),
        };
        let parsed = match patch::parse_reply(&proposal.reply, proposal.accepts, &workspace) {
            Ok(parsed) => parsed,
            Err(err) => {
                let reason = err.to_string();
                self.unusable(iteration, PatchStage::Parse, &reason, None, reporter);
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
            Decision::PolicyChecked {
                decision: decision.clone(),
                edit_format,
                summary: summary.clone(),
            },
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
                    cause: StopCause::ApprovalRequired,
                    reason: reason.clone(),
                });
                return failed_with(outcome, reason);
            }
        }
        // A dry run of the patch: one that does not fit the files goes back to the fixer
        // instead of wasting the reviewer's time.
        if let Err(err) = patch::plan(&patch, &workspace) {
            let reason = err.to_string();
            self.unusable(
                iteration,
                PatchStage::Apply,
                &reason,
                Some(&decision),
                reporter,
            );
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

    fn has_review_step(&self) -> bool {
        self.workflow
            .repair
            .iter()
            .any(|step| matches!(step.kind, StepKind::Review(_)))
    }
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
