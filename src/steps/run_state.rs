//! What a step asks of the engine running it: the state a run keeps across its steps, which
//! no step owns.
//!
//! `fix` and `review` work on the failure being repaired, the agents, the proposed patch and
//! the patches applied so far; a `pull_request` delivers those patches. The engine holds all
//! of it (`engine::repair`), above this layer, so it answers through this trait, handed to the
//! step in [`StepContext::run_state`](super::StepContext::run_state).

use tokio_util::sync::CancellationToken;

use super::StepOutcome;
use super::pull_request::Delivery;
use crate::workflow::step_config::fix::FixConfig;
use crate::workflow::step_config::review::ReviewConfig;
use crate::workflow::template::Renderer;

/// The engine's side of the steps that need the run's state.
#[async_trait::async_trait(?Send)]
pub trait RunState {
    /// Runs a `fix` step of iteration `iteration`: asks the fixer about the failure being
    /// repaired, and checks, plans and (with no `review` step) applies its patch.
    async fn fix(
        &mut self,
        config: &FixConfig,
        iteration: u32,
        renderer: &Renderer,
        cancel: &CancellationToken,
    ) -> StepOutcome;

    /// Runs a `review` step of iteration `iteration`: asks the reviewer about the proposed
    /// patch, and applies it when approved.
    async fn review(
        &mut self,
        config: &ReviewConfig,
        iteration: u32,
        renderer: &Renderer,
        cancel: &CancellationToken,
    ) -> StepOutcome;

    /// What `on_success` steps deliver; `None` before that phase.
    fn delivery(&self) -> Option<&Delivery>;
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::azure::sign_in::AzureSignIn;
    use crate::cluster::ledger::DeployLedger;
    use crate::redact::Redactor;
    use crate::steps::service::Services;
    use crate::steps::verify::baseline::Baselines;
    use crate::steps::{RunInfo, StepContext, StepStatus};
    use crate::workflow::model::{Step, StepKind};
    use crate::workflow::span::{Span, Spanned};

    /// Answers `fix` at once and never answers `review`, noting what it was asked.
    #[derive(Default)]
    struct FakeEngine {
        asked: Vec<String>,
    }

    #[async_trait::async_trait(?Send)]
    impl RunState for FakeEngine {
        async fn fix(
            &mut self,
            config: &FixConfig,
            iteration: u32,
            _renderer: &Renderer,
            _cancel: &CancellationToken,
        ) -> StepOutcome {
            self.asked
                .push(format!("fix by {} in {iteration}", config.agent.value));
            StepOutcome::passed("proposed")
        }

        async fn review(
            &mut self,
            config: &ReviewConfig,
            iteration: u32,
            _renderer: &Renderer,
            _cancel: &CancellationToken,
        ) -> StepOutcome {
            self.asked
                .push(format!("review by {} in {iteration}", config.agent.value));
            std::future::pending().await
        }

        fn delivery(&self) -> Option<&Delivery> {
            None
        }
    }

    fn step(kind: StepKind, timeout: Option<Duration>) -> Step {
        Step {
            id: Spanned::detached("repair".to_owned()),
            name: None,
            kind,
            required: true,
            condition: None,
            timeout: timeout.map(crate::workflow::duration::DurationSpec),
            retries: 0,
            span: Span::detached(),
            template: None,
        }
    }

    /// Runs `step` through the dispatcher, with `engine` as the run's state.
    async fn run(step: &Step, engine: Option<&mut FakeEngine>) -> StepOutcome {
        let run = RunInfo {
            run_id: "run-1".to_owned(),
            iteration: 3,
            workdir: PathBuf::from("."),
            artifacts_dir: PathBuf::from("."),
        };
        let renderer = Renderer::new(serde_json::json!({}));
        let (services, deployments) = (Services::default(), DeployLedger::in_memory());
        let (redactor, azure) = (Redactor::default(), AzureSignIn::default());
        let mut ctx = StepContext {
            step,
            run: &run,
            renderer: &renderer,
            log_path: PathBuf::from("repair.log"),
            echo: false,
            cancel: CancellationToken::new(),
            timeout: step.timeout.map(|t| t.0),
            services: &services,
            deployments: &deployments,
            redactor: &redactor,
            azure: &azure,
            baselines: Baselines::none(),
            run_state: engine.map(|engine| engine as &mut dyn RunState),
        };
        crate::steps::run(&mut ctx).await
    }

    #[tokio::test]
    async fn fix_and_review_steps_are_run_by_the_engine_within_their_timeout() {
        let agent = || Spanned::detached("a".to_owned());
        let fix = step(StepKind::Fix(FixConfig { agent: agent() }), None);
        let review = step(
            StepKind::Review(ReviewConfig { agent: agent() }),
            Some(Duration::from_millis(50)),
        );
        let mut engine = FakeEngine::default();

        let fixed = run(&fix, Some(&mut engine)).await;
        assert_eq!(fixed.status, StepStatus::Passed);
        assert_eq!(fixed.message, "proposed");
        let reviewed = run(&review, Some(&mut engine)).await;
        assert_eq!(reviewed.status, StepStatus::Failed);
        assert_eq!(reviewed.message, "timed out after 50ms");
        assert_eq!(engine.asked, ["fix by a in 3", "review by a in 3"]);

        let alone = run(&fix, None).await;
        assert_eq!(
            alone.message,
            "`fix` steps run only in a workflow's `repair:` phase"
        );
    }
}
