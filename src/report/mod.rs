//! Reports: everything a run leaves behind, each fed by the engine's event stream.
//!
//! Every report is a [`Reporter`] in its own file: [`console`] (the terminal view),
//! [`run_log`] (`run.log`), [`junit`] (`junit.xml`), [`audit`] (`audit.jsonl`), [`metrics`]
//! (`metrics.json`), [`summary`] (`summary.md`) and [`outputs`] (`outputs.json`). [`Reporters`] fans each event out to all
//! of them; [`Reporters::for_run`] sets up the whole artifacts folder of a run.
//!
//! [`Reporters`] redacts every event (see [`crate::redact`]) before any reporter sees it.

mod atomic_file;
pub mod audit;
pub mod console;
mod format;
pub mod junit;
pub mod metrics;
pub mod notification;
pub mod outputs;
pub mod pipeline;
pub mod run_log;
mod run_record;
pub mod summary;
pub mod telemetry;
#[cfg(test)]
mod test_events;
pub mod warning;

use std::io::{self, Write};
use std::path::Path;

use crate::engine::events::Event;
// Defined by the engine, which drives it; every reporter here implements it.
pub use crate::engine::reporter::Reporter;
use crate::redact::Redactor;

use self::audit::{AuditHead, AuditLog};
use self::console::Console;
use self::junit::JunitReport;
use self::metrics::MetricsReport;
use self::outputs::OutputsFile;
use self::run_log::RunLog;
use self::summary::SummaryReport;

/// Fans every event out to every reporter, secrets redacted. A reporter that fails does not
/// stop the others (or the run): its errors are collected, [`Reporters::errors`] lists them,
/// and `finish` fails if there were any.
#[derive(Default)]
pub struct Reporters {
    reporters: Vec<Box<dyn Reporter + Send>>,
    redactor: Redactor,
    audit_head: Option<AuditHead>,
    errors: Vec<ReportError>,
}

impl Reporters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `artifacts_dir` (and its parents) with `run.log`, `audit.jsonl`, `junit.xml`,
    /// `metrics.json` and `summary.md` in it, plus the console if given
    /// (`Some(Console::stderr(choice))` for a terminal).
    pub fn for_run<W: Write + Send + 'static>(
        artifacts_dir: &Path,
        console: Option<Console<W>>,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(artifacts_dir)?;
        let mut reporters = Self::new();
        if let Some(console) = console {
            reporters.push(console);
        }
        reporters.push(RunLog::create(&artifacts_dir.join("run.log"))?);
        let audit = AuditLog::create(&artifacts_dir.join("audit.jsonl"))?;
        reporters.audit_head = Some(audit.head());
        reporters.push(audit);
        reporters.push(JunitReport::new(artifacts_dir.join("junit.xml")));
        reporters.push(MetricsReport::new(artifacts_dir.join("metrics.json")));
        reporters.push(SummaryReport::new(artifacts_dir.join("summary.md")));
        reporters.push(OutputsFile::new(artifacts_dir.join("outputs.json")));
        Ok(reporters)
    }

    pub fn push(&mut self, reporter: impl Reporter + Send + 'static) {
        self.reporters.push(Box::new(reporter));
    }

    /// Redacts every event with `redactor` (the run's, which knows its secrets) from now on;
    /// until then, credential shapes only.
    pub fn redact_with(&mut self, redactor: Redactor) {
        self.redactor = redactor;
    }

    /// Every error met so far, oldest first.
    pub fn errors(&self) -> &[ReportError] {
        &self.errors
    }
}

impl Reporter for Reporters {
    fn name(&self) -> &str {
        "reports"
    }

    /// Hands `event` to every reporter in the order they were added; never fails.
    fn on_event(&mut self, event: &Event) -> io::Result<()> {
        let event = event.redacted(&self.redactor);
        for reporter in &mut self.reporters {
            if let Err(source) = reporter.on_event(&event) {
                self.errors.push(ReportError {
                    reporter: reporter.name().to_owned(),
                    source,
                });
            }
        }
        Ok(())
    }

    /// The SHA-256 of the last line of `audit.jsonl` (set up by [`Reporters::for_run`]):
    /// print it where the artifacts cannot rewrite it, so the whole log is tamper-evident.
    fn audit_head(&self) -> Option<String> {
        self.audit_head.as_ref().map(AuditHead::sha256)
    }

    /// Finishes every reporter, then fails if any error was met during the run or now.
    fn finish(&mut self) -> io::Result<()> {
        for reporter in &mut self.reporters {
            if let Err(source) = reporter.finish() {
                self.errors.push(ReportError {
                    reporter: reporter.name().to_owned(),
                    source,
                });
            }
        }
        match self.errors.as_slice() {
            [] => Ok(()),
            [first, ..] => Err(io::Error::other(format!(
                "{} report error(s), first: {first}: {}",
                self.errors.len(),
                first.source
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("failed to write report `{reporter}`")]
pub struct ReportError {
    pub reporter: String,
    #[source]
    pub source: io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_events::two_iteration_run;

    struct Failing;

    impl Reporter for Failing {
        fn name(&self) -> &str {
            "failing"
        }

        fn on_event(&mut self, _: &Event) -> io::Result<()> {
            Err(io::Error::other("disk full"))
        }

        fn finish(&mut self) -> io::Result<()> {
            Err(io::Error::other("still full"))
        }
    }

    #[test]
    fn for_run_writes_every_report_into_the_artifacts_dir() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = dir.path().join("runs/run-1");
        let console = Console::new(anstream::AutoStream::never(Vec::new()));
        let mut reporters = Reporters::for_run(&artifacts, Some(console)).unwrap();
        for event in two_iteration_run() {
            reporters.on_event(&event).unwrap();
        }
        reporters.finish().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&artifacts)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "audit.jsonl",
                "junit.xml",
                "metrics.json",
                "run.log",
                "summary.md"
            ]
        );
        let events = two_iteration_run().len() as u64;
        let (lines, head) = audit::verify_chain(&artifacts.join("audit.jsonl")).unwrap();
        assert_eq!(lines, events);
        assert_eq!(reporters.audit_head(), Some(head));
        let run_log = std::fs::read_to_string(artifacts.join("run.log")).unwrap();
        assert_eq!(run_log.lines().count() as u64, events);
    }

    #[test]
    fn no_report_sees_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = dir.path().join("run");
        let console = Console::new(anstream::AutoStream::never(Vec::new()));
        let mut reporters = Reporters::for_run(&artifacts, Some(console)).unwrap();
        // Both words appear in the scripted output tails and failure messages.
        reporters.redact_with(
            Redactor::builder()
                .secrets(["received 500", "exit code 2"])
                .build(),
        );
        for event in two_iteration_run() {
            reporters.on_event(&event).unwrap();
        }
        reporters.finish().unwrap();
        for name in [
            "audit.jsonl",
            "junit.xml",
            "metrics.json",
            "run.log",
            "summary.md",
        ] {
            let text = std::fs::read_to_string(artifacts.join(name)).unwrap();
            assert!(!text.contains("received 500"), "{name}: {text}");
            assert!(!text.contains("exit code 2"), "{name}: {text}");
        }
        let junit = std::fs::read_to_string(artifacts.join("junit.xml")).unwrap();
        assert!(junit.contains("expected 200, ***"), "{junit}");
    }

    #[test]
    fn one_failing_reporter_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        let mut reporters = Reporters::new();
        reporters.push(Failing);
        reporters.push(MetricsReport::new(&path));
        let events = two_iteration_run();
        for event in &events {
            reporters.on_event(event).unwrap();
        }
        let error = reporters.finish().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{} report error(s), first: failed to write report `failing`: disk full",
                events.len() + 1
            )
        );
        let errors = reporters.errors();
        assert_eq!(errors.len(), events.len() + 1);
        assert_eq!(errors.last().unwrap().source.to_string(), "still full");
        let metrics = std::fs::read_to_string(&path).unwrap();
        assert!(metrics.contains("\"outcome\": \"succeeded\""), "{metrics}");
    }
}
