//! The engine's side of the steps that need the run's state ([`RunState`]): `fix` and
//! `review` go to the repair phase, `pull_request` gets what `on_success` delivers.

use tokio_util::sync::CancellationToken;

use super::repair::Repair;
use super::reporter::Reporter;
use crate::steps::pull_request::Delivery;
use crate::steps::{RunState, StepOutcome};
use crate::workflow::step_config::fix::FixConfig;
use crate::workflow::step_config::review::ReviewConfig;
use crate::workflow::template::Renderer;

/// What the engine lends one step run: borrowed from it for that step only.
pub(super) struct EngineRunState<'r, 'a> {
    pub(super) repair: &'r mut Repair<'a>,
    pub(super) reporter: &'r mut dyn Reporter,
    /// Set when `on_success` starts.
    pub(super) delivery: Option<&'r Delivery>,
}

#[async_trait::async_trait(?Send)]
impl RunState for EngineRunState<'_, '_> {
    async fn fix(
        &mut self,
        config: &FixConfig,
        iteration: u32,
        renderer: &Renderer,
        cancel: &CancellationToken,
    ) -> StepOutcome {
        self.repair
            .fix(config, iteration, renderer, cancel, &mut *self.reporter)
            .await
    }

    async fn review(
        &mut self,
        config: &ReviewConfig,
        iteration: u32,
        renderer: &Renderer,
        cancel: &CancellationToken,
    ) -> StepOutcome {
        self.repair
            .review(config, iteration, renderer, cancel, &mut *self.reporter)
            .await
    }

    fn delivery(&self) -> Option<&Delivery> {
        self.delivery
    }
}
