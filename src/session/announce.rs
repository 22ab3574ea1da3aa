//! Secrets announced to the Azure Pipelines agent (`task.setsecret`) before anything of the run
//! is printed, so the agent masks them in the job's log too.

use crate::ado::logging::LoggingCommand;
use crate::error::Error;

/// Announces each value with `task.setsecret` on stdout.
pub(super) fn announce_secrets<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<(), Error> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    for command in set_secret_commands(values) {
        writeln!(stdout, "{command}").map_err(Error::Stdout)?;
    }
    stdout.flush().map_err(Error::Stdout)
}

/// `task.setsecret` for each value, and for each line of a multi-line value (a PEM key, say):
/// the agent masks line by line, so a whole multi-line value would never match one line.
fn set_secret_commands<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<LoggingCommand> {
    let mut commands = Vec::new();
    for value in values.into_iter().filter(|v| !v.is_empty()) {
        commands.push(LoggingCommand::set_secret(value));
        if value.contains('\n') {
            // Very short lines (`-----`, blank) would mask half the log for nothing.
            for line in value.lines().map(str::trim).filter(|l| l.len() >= 6) {
                commands.push(LoggingCommand::set_secret(line));
            }
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_secrets_are_announced_whole_and_by_line() {
        let lines: Vec<String> =
            set_secret_commands(["token-1", "", "-----BEGIN KEY-----\nMIIEvQIBADANBg\n---\n"])
                .iter()
                .map(ToString::to_string)
                .collect();
        assert_eq!(
            lines,
            [
                "##vso[task.setsecret]token-1",
                "##vso[task.setsecret]-----BEGIN KEY-----%0AMIIEvQIBADANBg%0A---%0A",
                "##vso[task.setsecret]-----BEGIN KEY-----",
                "##vso[task.setsecret]MIIEvQIBADANBg",
            ]
        );
    }
}
