//! `fix`: ask the fixer agent for an edit (in its `edit_format`) that repairs the last failure.
//!
//! [`outcome`] passes when the agent replied; the reply (a fenced edit, usually) goes to the
//! patch module, which parses, checks and applies it. The failure, the agents and the patches
//! are the run's, which the engine keeps: [`run`] hands the step to it
//! ([`RunState::fix`](super::RunState::fix)), and it builds the context, calls [`ask`], and
//! parses, checks and applies the reply.

use tokio_util::sync::CancellationToken;

use super::{StepContext, StepOutcome, StepStatus, within_timeout};
use crate::llm::{Agent, FixContext, FixProposal, LlmError};
use crate::workflow::step_config::fix::FixConfig;

/// For `--dry-run`: the agent.
pub fn describe(config: &FixConfig, _ctx: &StepContext<'_>) -> String {
    format!("would ask agent `{}` for a patch", config.agent.value)
}

/// Runs the step through the engine's repair state, within the step's `timeout`.
pub async fn run(config: &FixConfig, ctx: &mut StepContext<'_>) -> StepOutcome {
    let Some(state) = ctx.run_state.as_deref_mut() else {
        return StepOutcome::failed("`fix` steps run only in a workflow's `repair:` phase");
    };
    let fix = state.fix(config, ctx.run.iteration, ctx.renderer, &ctx.cancel);
    within_timeout(ctx.timeout, fix).await
}

/// Asks `agent` for a patch, unless the run is cancelled first. The result is `None` when
/// the step was cancelled; an error is kept for the caller (a refused budget stops the run).
pub async fn ask(
    agent: &Agent,
    ctx: &FixContext,
    cancel: &CancellationToken,
) -> (StepOutcome, Option<Result<FixProposal, LlmError>>) {
    tokio::select! {
        () = cancel.cancelled() => (StepOutcome::new(StepStatus::Cancelled, "cancelled"), None),
        result = agent.propose_fix(ctx) => (outcome(&result), Some(result)),
    }
}

/// The step outcome for a fixer's answer; outputs `model`, `prompt_hash` and `tokens`.
pub fn outcome(result: &Result<FixProposal, LlmError>) -> StepOutcome {
    match result {
        Ok(proposal) => {
            let mut outcome = StepOutcome::passed(format!(
                "proposed a patch ({} tokens)",
                proposal.usage.total_tokens
            ));
            outcome
                .outputs
                .insert("model".to_owned(), proposal.model.clone());
            outcome
                .outputs
                .insert("prompt_hash".to_owned(), proposal.prompt_hash.clone());
            outcome
                .outputs
                .insert("tokens".to_owned(), proposal.usage.total_tokens.to_string());
            outcome
        }
        Err(error) => StepOutcome::failed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{LlmErrorKind, Usage};

    #[test]
    fn a_reply_passes_and_an_error_fails_with_its_message() {
        let proposal = FixProposal {
            reply: "```diff\n```".to_owned(),
            edit_format: crate::patch::EditFormat::Unified,
            accepts: None,
            prompt: String::new(),
            prompt_hash: "ab".repeat(32),
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
                estimated: false,
            },
            model: "gpt-4o".to_owned(),
        };
        let passed = outcome(&Ok(proposal));
        assert_eq!(passed.status, StepStatus::Passed);
        assert_eq!(passed.message, "proposed a patch (15 tokens)");
        assert_eq!(passed.outputs["tokens"], "15");

        let failed = outcome(&Err(LlmError::new(
            "fixer",
            LlmErrorKind::Api {
                status: 401,
                message: "bad key".to_owned(),
            },
        )));
        assert_eq!(failed.status, StepStatus::Failed);
        assert_eq!(
            failed.message,
            "agent `fixer`: the provider answered 401: bad key"
        );
    }
}
