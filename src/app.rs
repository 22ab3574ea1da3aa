//! The entry point behind `main`: parse arguments, dispatch, print errors, pick the exit code.

use std::ffi::OsString;
use std::io::Write;

use crate::cli::{Cli, ColorChoice, Command};
use crate::commands;
use crate::error::{Error, ExitStatus};
use crate::redact::Redactor;

pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
    #[cfg(target_os = "linux")]
    {
        if crate::process::supervisor::requested() {
            return match crate::process::supervisor::run() {
                Ok(()) => ExitStatus::Success,
                // Its stderr is agent-orch's: the error shows where the run's own would.
                Err(err) => {
                    let _ = writeln!(std::io::stderr(), "agent-orch supervisor: {err}");
                    ExitStatus::RunFailed
                }
            };
        }
        crate::process::supervise_with_current_exe();
    }
    let cli = match Cli::parse_from_args(args) {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` come back as errors that are not failures.
            let _ = err.print();
            return if err.use_stderr() {
                ExitStatus::Invalid
            } else {
                ExitStatus::Success
            };
        }
    };
    let color = stderr_color(cli.color);
    let result = match &cli.command {
        Command::Schema => commands::schema::run(),
        Command::Validate(args) => commands::validate::run(args, color),
        Command::Plan(args) => commands::plan::run(args),
        Command::Run(args) => commands::run::run(args, cli.color, color),
        Command::Demo(args) => commands::demo::run(args, cli.color, color),
        Command::Task => commands::task::run(color),
        Command::Hub(command) => commands::hub::run(command),
        Command::Worker(args) => commands::worker::run(args),
        Command::Audit(command) => commands::audit::run(command),
    };
    match result {
        Ok(status) => status,
        Err(err) => {
            report_error(&err, color);
            err.exit_status()
        }
    }
}

/// Whether stderr gets colours: the explicit choice, else a terminal without `NO_COLOR`.
pub(crate) fn stderr_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
        }
    }
}

/// `error: ...` then one `Caused by:` line per source, as uv does. The text goes through the
/// redactor like every other output: an error can quote a URL, a header or a variable's value.
fn report_error(err: &Error, color: bool) {
    let redactor = Redactor::builder().process_env().build();
    let mut stderr = std::io::stderr().lock();
    if let Error::Workflow { rendered, .. } = err {
        let _ = write!(stderr, "{}", redactor.redact(rendered));
        return;
    }
    let style = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Red.into()));
    let (on, off) = if color {
        (style.render().to_string(), style.render_reset().to_string())
    } else {
        (String::new(), String::new())
    };
    let _ = writeln!(
        stderr,
        "{on}error{off}: {}",
        redactor.redact(&err.to_string())
    );
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let _ = writeln!(
            stderr,
            "  Caused by: {}",
            redactor.redact(&cause.to_string())
        );
        source = cause.source();
    }
}
