//! `agent-orch audit verify`: checks a run's `audit.jsonl` hash chain, and optionally its head
//! against the one recorded outside the artifacts when the run ended.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{AuditCommand, AuditVerifyArgs};
use crate::error::{Error, ExitStatus};
use crate::report::audit::verify_chain;

pub(crate) fn run(command: &AuditCommand) -> Result<ExitStatus, Error> {
    match command {
        AuditCommand::Verify(args) => verify(args),
    }
}

fn verify(args: &AuditVerifyArgs) -> Result<ExitStatus, Error> {
    let path = audit_file(&args.path);
    let (lines, head) = verify_chain(&path)?;
    if let Some(expected) = &args.head
        && !expected.trim().eq_ignore_ascii_case(&head)
    {
        return Err(Error::AuditHead {
            path,
            expected: expected.trim().to_owned(),
            found: head,
        });
    }
    let checked = if args.head.is_some() {
        "chain intact, head matches"
    } else {
        "chain intact"
    };
    writeln!(
        std::io::stdout().lock(),
        "{}: {lines} lines, {checked}, head {head}",
        path.display()
    )
    .map_err(Error::Stdout)?;
    Ok(ExitStatus::Success)
}

/// A run folder means its `audit.jsonl`; anything else is taken as the file itself.
fn audit_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("audit.jsonl")
    } else {
        path.to_owned()
    }
}
