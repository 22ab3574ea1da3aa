//! `review`: ask the reviewer agent for a structured verdict on the proposed patch.
//!
//! The step passes only on an approval. A rejection fails it with the reviewer's reason, and
//! its suggestion is published for the next fix attempt; a reply that is not a verdict fails it
//! too. The deterministic patch policy runs before this step and is not overridden by it.
//!
//! The patch and the failure are the run's, which the engine keeps: [`run`] hands the step to
//! it ([`RunState::review`](super::RunState::review)), and it builds the context and calls
//! [`ask`].

use tokio_util::sync::CancellationToken;

use super::{StepContext, StepOutcome, StepStatus, within_timeout};
use crate::llm::{Agent, LlmError, Review, ReviewContext};
use crate::workflow::step_config::review::ReviewConfig;

/// For `--dry-run`: the agent.
pub fn describe(config: &ReviewConfig, _ctx: &StepContext<'_>) -> String {
    format!(
        "would ask agent `{}` to review the patch",
        config.agent.value
    )
}

/// Runs the step through the engine's repair state, within the step's `timeout`.
pub async fn run(config: &ReviewConfig, ctx: &mut StepContext<'_>) -> StepOutcome {
    let Some(state) = ctx.run_state.as_deref_mut() else {
        return StepOutcome::failed("`review` steps run only in a workflow's `repair:` phase");
    };
    let review = state.review(config, ctx.run.iteration, ctx.renderer, &ctx.cancel);
    within_timeout(ctx.timeout, review).await
}

/// Asks `agent` for a verdict, unless the run is cancelled first. The result is `None` when
/// the step was cancelled; an error is kept for the caller (a refused budget stops the run).
pub async fn ask(
    agent: &Agent,
    ctx: &ReviewContext,
    cancel: &CancellationToken,
) -> (StepOutcome, Option<Result<Review, LlmError>>) {
    tokio::select! {
        () = cancel.cancelled() => (StepOutcome::new(StepStatus::Cancelled, "cancelled"), None),
        result = agent.review(ctx) => (outcome(&result), Some(result)),
    }
}

/// The step outcome for a reviewer's answer; outputs `approved`, `risk`, `reason` and, when
/// given, `suggestion`.
pub fn outcome(result: &Result<Review, LlmError>) -> StepOutcome {
    let review = match result {
        Ok(review) => review,
        Err(error) => return StepOutcome::failed(error.to_string()),
    };
    let verdict = &review.verdict;
    let risk = verdict.risk.as_str();
    let mut outcome = if verdict.approved {
        StepOutcome::passed(format!("approved ({risk} risk): {}", verdict.reason))
    } else {
        StepOutcome::failed(format!("rejected ({risk} risk): {}", verdict.reason))
    };
    let outputs = &mut outcome.outputs;
    outputs.insert("approved".to_owned(), verdict.approved.to_string());
    outputs.insert("risk".to_owned(), risk.to_owned());
    outputs.insert("reason".to_owned(), verdict.reason.clone());
    if let Some(suggestion) = &verdict.suggestion {
        outputs.insert("suggestion".to_owned(), suggestion.clone());
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Risk, Usage, Verdict};

    fn review(approved: bool, suggestion: Option<&str>) -> Review {
        Review {
            verdict: Verdict {
                approved,
                reason: "because".to_owned(),
                risk: Risk::Medium,
                suggestion: suggestion.map(str::to_owned),
            },
            structured: true,
            reply: String::new(),
            prompt: String::new(),
            prompt_hash: String::new(),
            usage: Usage::default(),
            model: "m".to_owned(),
        }
    }

    #[test]
    fn only_an_approval_passes() {
        let approved = outcome(&Ok(review(true, None)));
        assert_eq!(approved.status, StepStatus::Passed);
        assert_eq!(approved.message, "approved (medium risk): because");
        assert!(!approved.outputs.contains_key("suggestion"));

        let rejected = outcome(&Ok(review(false, Some("smaller change"))));
        assert_eq!(rejected.status, StepStatus::Failed);
        assert_eq!(rejected.message, "rejected (medium risk): because");
        assert_eq!(rejected.outputs["suggestion"], "smaller change");
        assert_eq!(rejected.outputs["approved"], "false");
    }
}
