//! A step's progress lines: appended to its log file, echoed to stderr when asked, and the last
//! few kept for the outcome's `output_tail`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

const TAIL_LINES: usize = 30;

pub(crate) struct StepLog {
    file: Option<File>,
    echo: bool,
    started: Instant,
    tail: VecDeque<String>,
}

impl StepLog {
    /// Opens (creates) the log file; a log that cannot be written is not worth failing a step.
    pub(crate) fn open(path: &Path, echo: bool) -> Self {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        Self {
            file: File::create(path).ok(),
            echo,
            started: Instant::now(),
            tail: VecDeque::new(),
        }
    }

    pub(crate) fn line(&mut self, text: &str) {
        let line = format!("[{:>7.2}s] {text}", self.started.elapsed().as_secs_f64());
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{line}");
        }
        if self.echo {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    pub(crate) fn tail(&self) -> String {
        let mut text = String::new();
        for line in &self.tail {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}
