//! `gate`: run a command (lint, test, build) and pass when it exits 0.
//!
//! ```yaml
//! - {id: test, gate: "npm test"}
//! - id: build
//!   gate:
//!     run: |
//!       npm ci
//!       npm run build
//!       echo "version=$(cat VERSION)" >> "$AGENT_ORCH_OUTPUT"
//!     shell: bash                    # sh (default on Unix), bash, cmd (default on Windows)
//!     workdir: frontend              # relative to the workflow's repository
//!     env: {NAMESPACE: "{{ env.namespace }}"}
//! ```
//!
//! `run`, `workdir` and `env` values are templates, rendered when the step runs. The command
//! runs through [`crate::process::run_command`]: in its own process group, output streamed to
//! the step's log (and the terminal when echoing), killed with everything it started on
//! timeout or cancellation. Scripts stop at their first failing command (`sh -e`).
//!
//! **Outputs.** Like GitHub Actions' `GITHUB_OUTPUT`, `$AGENT_ORCH_OUTPUT` holds the path of a
//! fresh, empty file. Lines the command appends to it become the step's outputs, readable by
//! later steps as `steps.<id>.outputs.<name>`:
//!
//! - `name=value` (the value is the rest of the line);
//! - `name<<DELIMITER`, then the value's lines, then a line that is exactly `DELIMITER`.
//!
//! A malformed file fails the step. The file sits next to the step's log while the command
//! runs and is removed afterwards (see [`crate::process::OutputsFile`]).

use crate::core::error_chain::error_chain;
use std::path::{Path, PathBuf};

use crate::process::{self, CommandSpec, OutputSink, OutputsFile};
use crate::steps::{StepContext, StepOutcome, StepStatus};
use crate::workflow::step_config::gate::GateConfig;
use crate::workflow::step_config::shell::Shell;
use crate::workflow::template::Template;

/// For `--dry-run`: the command.
pub fn describe(config: &GateConfig, ctx: &StepContext<'_>) -> String {
    format!("would run `{}`", super::rendered_line(ctx, &config.run))
}

/// Runs the gate; see the module documentation.
/// Output is redacted with the run's redactor in the log, echo and tail.
pub async fn run(config: &GateConfig, ctx: &StepContext<'_>) -> StepOutcome {
    let spec = match command_spec(config, ctx) {
        Ok(spec) => spec,
        Err(message) => return StepOutcome::failed(message),
    };
    if let Some(dir) = ctx.log_path.parent()
        && let Err(err) = std::fs::create_dir_all(dir)
    {
        return StepOutcome::failed(format!(
            "failed to create log directory `{}`: {err}",
            dir.display()
        ));
    }
    let outputs_file = match OutputsFile::create(outputs_path(&ctx.log_path)) {
        Ok(file) => file,
        Err(err) => return StepOutcome::failed(error_chain(&err)),
    };
    let spec = spec.env(
        process::OUTPUTS_ENV,
        outputs_file.path().to_string_lossy().into_owned(),
    );

    let mut sink = OutputSink::new()
        .log_to(&ctx.log_path)
        .redact_with(ctx.redactor);
    if ctx.echo {
        sink = sink.echo_to_stderr();
    }
    let result = process::run_command(&spec, sink, &ctx.cancel, ctx.timeout).await;
    let outputs = outputs_file.read_and_remove();

    let result = match result {
        Ok(result) => result,
        Err(err) => {
            let mut outcome = StepOutcome::failed(error_chain(&err));
            if !matches!(err.kind, process::ProcessErrorKind::CreateLog(_)) {
                outcome.log_path = Some(ctx.log_path.clone());
            }
            return outcome;
        }
    };

    let (status, mut message) = if result.cancelled {
        (StepStatus::Cancelled, "cancelled".to_owned())
    } else if result.timed_out {
        let after = ctx.timeout.unwrap_or_default();
        (
            StepStatus::Failed,
            format!("timed out after {}", humantime::format_duration(after)),
        )
    } else {
        match result.exit {
            Some(exit) if result.success() => (StepStatus::Passed, exit.to_string()),
            Some(exit) => (StepStatus::Failed, exit.to_string()),
            None => (
                StepStatus::Failed,
                "the command's exit status is unknown".to_owned(),
            ),
        }
    };
    if result.output_left_open {
        message.push_str("; a process outside its group kept the output open");
    }
    let mut outcome = StepOutcome::new(status, message);
    outcome.exit_code = match result.exit {
        Some(process::Exit::Code(code)) => Some(code),
        _ => None,
    };
    outcome.output_tail = result.tail;
    outcome.log_path = Some(ctx.log_path.clone());
    match outputs {
        Ok(outputs) => outcome.outputs = outputs,
        Err(err) => {
            // A malformed outputs file is the command's mistake: the step cannot pass with it.
            if outcome.status == StepStatus::Passed {
                outcome.status = StepStatus::Failed;
                outcome.message = error_chain(&err);
            } else {
                outcome.message = format!("{}; {}", outcome.message, error_chain(&err));
            }
        }
    }
    outcome
}

/// Renders the step's templates into the command to run.
pub(crate) fn command_spec(
    config: &GateConfig,
    ctx: &StepContext<'_>,
) -> Result<CommandSpec, String> {
    let render = |field: &str, template: &Template| {
        ctx.renderer
            .render(template)
            .map_err(|err| format!("failed to render `{field}`: {}", err.reason()))
    };
    let script = render("run", &config.run)?;
    let workdir = match &config.workdir {
        Some(workdir) => ctx.run.workdir.join(render("workdir", workdir)?),
        None => ctx.run.workdir.clone(),
    };
    if !workdir.is_dir() {
        return Err(format!(
            "workdir `{}` is not a directory",
            workdir.display()
        ));
    }
    let shell = config.shell.unwrap_or_else(Shell::platform_default);
    let mut spec = CommandSpec::shell(shell, script).workdir(workdir);
    for (name, value) in &config.env {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(format!("invalid environment variable name `{name}`"));
        }
        let value = render(&format!("env.{name}"), value)?;
        spec = spec.env(name.clone(), value);
    }
    Ok(spec)
}

/// `artifacts/build.log` -> `artifacts/build.outputs`.
fn outputs_path(log_path: &Path) -> PathBuf {
    log_path.with_extension("outputs")
}

#[cfg(test)]
mod tests;
