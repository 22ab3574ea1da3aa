//! The `review` step: asks the reviewer about the proposed patch; an approved patch is applied,
//! a rejected one's suggestion (or reason) goes to the next fix attempt.

use tokio_util::sync::CancellationToken;

use super::agents::Ask;
use super::{Repair, failed_with};
use crate::engine::decision::Decision;
use crate::engine::reporter::Reporter;
use crate::llm::{Review, ReviewContext};
use crate::steps::StepOutcome;
use crate::workflow::step_config::review::ReviewConfig;
use crate::workflow::template::Renderer;

impl Repair<'_> {
    /// Runs a `review` step (`steps::review`, through the engine's `RunState`); once the run is
    /// stopping it asks no agent.
    pub(in crate::engine) async fn review(
        &mut self,
        config: &ReviewConfig,
        iteration: u32,
        renderer: &Renderer,
        cancel: &CancellationToken,
        reporter: &mut dyn Reporter,
    ) -> StepOutcome {
        if self.stopped() {
            return super::stopping();
        }
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
        let patch_sha256 = proposal.decision.patch_sha256.clone();
        let ask = Ask {
            agent: &config.agent.value,
            question: &context,
            iteration,
        };
        let decision = |exchange, review: &Review| Decision::ReviewVerdict {
            exchange,
            verdict: review.verdict.clone(),
            structured: review.structured,
            patch_sha256,
        };
        let (mut outcome, review) = match self.ask(ask, renderer, cancel, reporter, decision).await
        {
            Ok(asked) => asked,
            Err(outcome) => return outcome,
        };
        if !review.verdict.approved {
            self.proposal = None;
            // Without a suggestion, the reason is what the next attempt should address.
            let advice = review
                .verdict
                .suggestion
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| review.verdict.reason.clone());
            self.suggestion = Some(advice);
            return outcome;
        }
        match self.apply_proposal(iteration, Some(review.verdict.reason.clone()), reporter) {
            Ok(path) => {
                outcome.message.push_str(&format!("; applied `{path}`"));
                outcome
            }
            Err(reason) => failed_with(outcome, reason),
        }
    }
}
