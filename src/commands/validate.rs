//! `agent-orch validate`: every error of every file at once; runs nothing.

use std::io::Write;

use crate::cli::ValidateArgs;
use crate::error::{Error, ExitStatus};
use crate::workflow::{self, LoadOptions};

pub(crate) fn run(args: &ValidateArgs, color: bool) -> Result<ExitStatus, Error> {
    let mut status = ExitStatus::Success;
    let mut stderr = std::io::stderr().lock();
    for file in &args.files {
        let options = LoadOptions {
            environment: args.environment.clone(),
            vars: Vec::new(),
            every_environment: true,
        };
        match workflow::load(file, &options) {
            Ok(workflow) => {
                // Warnings are shown, and leave the exit status alone.
                for warning in workflow::lint::warnings(&workflow) {
                    let _ = writeln!(stderr, "{}", warning.render(color));
                }
                let _ = writeln!(stderr, "{}: ok", file.display());
            }
            Err(diagnostics) => {
                let _ = write!(stderr, "{}", diagnostics.render(color));
                status = ExitStatus::Invalid;
            }
        }
    }
    Ok(status)
}
