//! `service`: start a long-running process — the app under test, a local stand-in for a
//! deployment — that keeps running while later steps (verify) talk to it.
//!
//! It takes the same settings as a gate (`run`, `workdir`, `env`, `shell`). The step passes
//! when the process is still running after a short settling time; it fails if the process
//! exits before that. Every service is stopped (its whole process group) when the iteration
//! ends, so the next iteration starts the repaired code, and when the run ends or is
//! interrupted. Its output goes to the step log only: a server's access log would drown the
//! live view.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::gate::command_spec;
use super::{StepContext, StepOutcome, StepStatus};
use crate::core::error_chain::error_chain;
use crate::process::{self, CommandResult, OutputSink, ProcessError};
use crate::workflow::step_config::gate::GateConfig;

/// How long a service must stay up to count as started.
const SETTLE: Duration = Duration::from_millis(300);

/// How long stopping a service may take before we stop waiting for it (SIGTERM, then SIGKILL).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

struct RunningService {
    stop: CancellationToken,
    task: JoinHandle<Result<CommandResult, ProcessError>>,
}

/// The services started in the current iteration.
#[derive(Default)]
pub struct Services {
    running: Mutex<Vec<RunningService>>,
}

impl Services {
    /// Stops every running service and waits for its process group to end.
    pub async fn stop_all(&self) {
        let services = std::mem::take(&mut *self.running.lock().await);
        for service in &services {
            service.stop.cancel();
        }
        for service in services {
            // A service that does not stop in time is abandoned; its group was already killed.
            let _ = tokio::time::timeout(STOP_TIMEOUT, service.task).await;
        }
    }
}

/// For `--dry-run`: the command.
pub fn describe(config: &GateConfig, ctx: &StepContext<'_>) -> String {
    format!("would start `{}`", super::rendered_line(ctx, &config.run))
}

pub async fn run(config: &GateConfig, ctx: &StepContext<'_>) -> StepOutcome {
    let spec = match command_spec(config, ctx) {
        Ok(spec) => spec,
        Err(message) => return StepOutcome::failed(message),
    };
    let sink = OutputSink::new()
        .log_to(&ctx.log_path)
        .redact_with(ctx.redactor);
    // Stopped by the iteration's end (stop_all) or by an interrupt, whichever comes first.
    let stop = ctx.cancel.child_token();
    let mut task = tokio::spawn({
        let stop = stop.clone();
        async move { process::run_command(&spec, sink, &stop, None).await }
    });
    let settled = tokio::select! {
        finished = &mut task => Some(finished),
        () = tokio::time::sleep(SETTLE) => None,
        () = ctx.cancel.cancelled() => {
            stop.cancel();
            let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
            return StepOutcome::new(StepStatus::Cancelled, "cancelled");
        }
    };
    let mut outcome = match settled {
        None => {
            ctx.services
                .running
                .lock()
                .await
                .push(RunningService { stop, task });
            StepOutcome::passed("running")
        }
        Some(Ok(Ok(result))) => {
            let exit = result
                .exit
                .map_or_else(|| "unknown status".to_owned(), |exit| exit.to_string());
            let mut outcome =
                StepOutcome::failed(format!("the service exited while starting ({exit})"));
            outcome.exit_code = match result.exit {
                Some(process::Exit::Code(code)) => Some(code),
                _ => None,
            };
            outcome.output_tail = result.tail;
            outcome
        }
        Some(Ok(Err(err))) => StepOutcome::failed(error_chain(&err)),
        Some(Err(err)) => StepOutcome::failed(format!("the service task failed: {err}")),
    };
    outcome.log_path = Some(ctx.log_path.clone());
    outcome
}
