//! A warning for people that is not part of any report: a `task.logissue` in a pipeline (so it
//! shows on the run's summary page), a `warning:` line on stderr elsewhere.

use std::io::Write;

use crate::ado::logging::{Issue, LoggingCommand};

pub fn warn(pipeline: bool, message: &str) {
    if pipeline {
        let issue = LoggingCommand::log_issue(&Issue::warning(message));
        let _ = writeln!(std::io::stdout().lock(), "{issue}");
    } else {
        let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
    }
}
