//! The step's log: one entry per attempt (and per flow request), written to the step's log
//! file, echoed briefly to the terminal when asked, the last lines kept for the outcome.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::Path;

use tokio::io::AsyncWriteExt as _;

/// Lines kept for `StepOutcome::output_tail`.
const TAIL_LINES: usize = 20;

pub(crate) struct AttemptLog {
    file: tokio::fs::File,
    /// `verify health`, when lines are echoed to the terminal.
    echo_label: Option<String>,
    tail: VecDeque<String>,
    write_error: Option<std::io::Error>,
}

impl AttemptLog {
    pub(crate) async fn create(path: &Path, echo: bool, step_id: &str) -> std::io::Result<Self> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            tokio::fs::create_dir_all(parent).await?;
        }
        Ok(Self {
            file: tokio::fs::File::create(path).await?,
            echo_label: echo.then(|| format!("verify {step_id}")),
            tail: VecDeque::with_capacity(TAIL_LINES),
            write_error: None,
        })
    }

    /// Writes a line to the log file, and to stderr when echoing. Callers redact first.
    pub(crate) async fn line(&mut self, line: &str) {
        self.detail(line).await;
        if let Some(label) = &self.echo_label {
            // A closed stderr must not fail a check.
            let _ = writeln!(std::io::stderr().lock(), "[{label}] {line}");
        }
    }

    /// Writes a line to the log file only (response bodies: too long for a terminal).
    pub(crate) async fn detail(&mut self, line: &str) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
        if self.write_error.is_some() {
            return;
        }
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        if let Err(err) = self.file.write_all(&bytes).await {
            self.write_error = Some(err);
        }
    }

    /// Flushes the file; returns the first write error, if any, for the outcome to mention.
    pub(crate) async fn finish(&mut self) -> Option<String> {
        if self.write_error.is_none()
            && let Err(err) = self.file.flush().await
        {
            self.write_error = Some(err);
        }
        self.write_error.as_ref().map(ToString::to_string)
    }

    pub(crate) fn tail(&self) -> String {
        self.tail
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
