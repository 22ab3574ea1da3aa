//! `agent-orch plan`: the fully expanded workflow on stdout; runs nothing.

use std::io::Write;

use crate::cli::PlanArgs;
use crate::error::{Error, ExitStatus};

pub(crate) fn run(args: &PlanArgs) -> Result<ExitStatus, Error> {
    let workflow = super::load(&args.workflow, false)?;
    let text = crate::workflow::plan(&workflow);
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(Error::Stdout)?;
    Ok(ExitStatus::Success)
}
