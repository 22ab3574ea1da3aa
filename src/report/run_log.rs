//! `run.log`: the run as a person reads it afterwards, one timestamped line per event.
//! Step output is not here: each step writes its own log under `steps/`.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use super::Reporter;
use super::format::{decision_summary, human_duration, iterations_phrase, one_line, outcome_words};
use crate::engine::events::Event;
use crate::steps::StepStatus;

/// Long messages are cut here; the full text is in `audit.jsonl`.
const MAX_MESSAGE_CHARS: usize = 400;

pub struct RunLog {
    file: File,
}

impl RunLog {
    /// Creates (or truncates) the log file.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::create(path)?,
        })
    }
}

impl Reporter for RunLog {
    fn name(&self) -> &str {
        "run.log"
    }

    fn on_event(&mut self, event: &Event) -> io::Result<()> {
        let timestamp = humantime::format_rfc3339_millis(SystemTime::now());
        // One unbuffered write per line: a crash keeps every line before it.
        self.file
            .write_all(format!("{timestamp}  {}\n", describe(event)).as_bytes())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// The event in one line, without the timestamp.
fn describe(event: &Event) -> String {
    match event {
        Event::RunStarted {
            run_id,
            workflow,
            workflow_path,
            environment,
            artifacts_dir,
            max_iterations,
            at,
        } => format!(
            "run {run_id} started at {}: workflow {workflow} ({}), environment {}, \
             at most {}, artifacts in {}",
            humantime::format_rfc3339_seconds(*at),
            workflow_path.display(),
            environment.as_deref().unwrap_or("(none)"),
            iterations_phrase(*max_iterations),
            artifacts_dir.display(),
        ),
        Event::IterationStarted { iteration } => format!("iteration {iteration} started"),
        Event::StepStarted {
            iteration,
            phase,
            step_id,
            kind,
            index,
            total,
            ..
        } => format!(
            "[{iteration}] {}/{step_id} started ({kind}, {index}/{total})",
            phase.key()
        ),
        Event::StepFinished {
            iteration,
            phase,
            step_id,
            required,
            duration,
            outcome,
            ..
        } => {
            let mut line = format!(
                "[{iteration}] {}/{step_id} {}",
                phase.key(),
                outcome.status.as_str()
            );
            if !required && !outcome.status.is_success() {
                line.push_str(" (not required)");
            }
            if outcome.status != StepStatus::Skipped {
                line.push_str(&format!(" in {}", human_duration(*duration)));
            }
            if !outcome.message.is_empty() {
                line.push_str(": ");
                line.push_str(&one_line(&outcome.message, MAX_MESSAGE_CHARS));
            }
            if let Some(log_path) = &outcome.log_path {
                line.push_str(&format!(" (log {})", log_path.display()));
            }
            line
        }
        Event::IterationFinished {
            iteration,
            passed,
            fingerprint,
            failure,
        } => {
            let mut line = format!(
                "iteration {iteration} {}",
                if *passed { "passed" } else { "failed" }
            );
            if let Some(failure) = failure {
                line.push_str(": ");
                line.push_str(&one_line(failure, MAX_MESSAGE_CHARS));
            }
            if let Some(fingerprint) = fingerprint {
                line.push_str(&format!(" (fingerprint {fingerprint})"));
            }
            line
        }
        Event::Decision {
            iteration,
            decision,
        } => {
            let kind = decision.kind();
            let summary = decision_summary(decision);
            if summary.is_empty() {
                format!("[{iteration}] decision {kind}")
            } else {
                format!("[{iteration}] decision {kind}: {summary}")
            }
        }
        Event::OutputsRendered { outputs } => {
            let pairs: Vec<String> = outputs
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            format!(
                "outputs: {}",
                one_line(&pairs.join(", "), MAX_MESSAGE_CHARS)
            )
        }
        Event::RunFinished {
            outcome,
            reason,
            iterations,
            duration,
        } => format!(
            "run {} after {} in {}: {}",
            outcome_words(*outcome),
            iterations_phrase(*iterations),
            human_duration(*duration),
            one_line(reason, MAX_MESSAGE_CHARS)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_events::{interrupted_run, two_iteration_run};

    fn replay(events: &[Event]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        let mut log = RunLog::create(&path).unwrap();
        for event in events {
            log.on_event(event).unwrap();
        }
        log.finish().unwrap();
        std::fs::read_to_string(&path).unwrap()
    }

    fn snapshot(name: &str, log: &str) {
        insta::with_settings!({filters => vec![
            (r"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  ", "[ts]  "),
        ]}, {
            insta::assert_snapshot!(name, log);
        });
    }

    #[test]
    fn one_timestamped_line_per_event() {
        let events = two_iteration_run();
        let log = replay(&events);
        assert_eq!(log.lines().count(), events.len());
        for line in log.lines() {
            let (timestamp, _) = line.split_once("  ").unwrap();
            assert!(humantime::parse_rfc3339(timestamp).is_ok(), "{line}");
        }
        snapshot("run_log_two_iterations", &log);
    }

    #[test]
    fn an_interrupted_run_says_so() {
        let log = replay(&interrupted_run());
        snapshot("run_log_interrupted", &log);
    }
}
