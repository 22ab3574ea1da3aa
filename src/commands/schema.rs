//! `agent-orch schema`: the workflow format's JSON Schema on stdout.

use std::io::Write;

use crate::error::{Error, ExitStatus};

pub(crate) fn run() -> Result<ExitStatus, Error> {
    let schema = crate::workflow::schema();
    let text = serde_json::to_string_pretty(&schema).map_err(|e| Error::Stdout(e.into()))?;
    writeln!(std::io::stdout().lock(), "{text}").map_err(Error::Stdout)?;
    Ok(ExitStatus::Success)
}
