//! `agent-orch run`: the loop, with reports written as it goes.

use std::time::Duration;

use serde_json::Map;

use crate::cli::{ColorChoice, RunArgs};
use crate::cluster::ledger::DeployLedger;
use crate::engine::events::RunOutcome;
use crate::engine::interrupt::Interrupts;
use crate::engine::run_loop::{Engine, RunSettings};
use crate::engine::template_context::TemplateContext;
use crate::error::{Error, ExitStatus};
use crate::report::console::Console;
use crate::report::{Reporter, Reporters};

pub(crate) fn run(
    args: &RunArgs,
    color_choice: ColorChoice,
    color: bool,
) -> Result<ExitStatus, Error> {
    let workflow = super::load(&args.workflow, color)?;
    let settings = RunSettings::resolve(args, &workflow);
    std::fs::create_dir_all(&settings.artifacts_dir).map_err(|source| Error::Artifacts {
        path: settings.artifacts_dir.clone(),
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let status =
        runtime.block_on(async {
            let interrupts = Interrupts::listen().map_err(Error::Signals)?;
            let console = Console::stderr(match color_choice {
                ColorChoice::Auto => anstream::ColorChoice::Auto,
                ColorChoice::Always => anstream::ColorChoice::Always,
                ColorChoice::Never => anstream::ColorChoice::Never,
            });
            let mut reporters = Reporters::for_run(&settings.artifacts_dir, Some(console))
                .map_err(|source| Error::Artifacts {
                    path: settings.artifacts_dir.clone(),
                    source,
                })?;
            let context = TemplateContext::new(
                &workflow,
                &settings.run_id,
                settings.max_iterations,
                Map::new(),
                Map::new(),
            );
            let deployments =
                DeployLedger::in_artifacts(&settings.artifacts_dir).map_err(Error::DeployLedger)?;
            let summary = Engine::new(
                &workflow,
                &settings,
                context,
                &mut reporters,
                interrupts,
                deployments,
            )
            .run()
            .await;
            if let Err(err) = reporters.finish() {
                // The run's outcome stands; a report that could not be written is said, not fatal.
                report_warning(&err);
            }
            Ok::<_, Error>(match summary.outcome {
                RunOutcome::Succeeded | RunOutcome::SucceededWithIssues => ExitStatus::Success,
                RunOutcome::Failed => ExitStatus::RunFailed,
                RunOutcome::Interrupted => ExitStatus::Interrupted,
            })
        })?;
    // A step that ignored cancellation must not keep the process alive after the reports.
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(status)
}

fn report_warning(err: &std::io::Error) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "warning: {err}");
}
