//! [`Shell`]: the shell a step's script is written for. `process` runs it.

use schemars::JsonSchema;
use serde::Deserialize;

/// The shell a script runs in. Like GitHub Actions, scripts stop at the first failing command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Shell {
    /// `sh -e -c SCRIPT`: the default on Unix.
    Sh,
    /// `bash --noprofile --norc -e -o pipefail -c SCRIPT`.
    Bash,
    /// `cmd /D /S /C "SCRIPT"`: the default on Windows.
    Cmd,
}

impl Shell {
    /// The shell a `run:` line uses when the workflow does not name one.
    pub fn platform_default() -> Self {
        if cfg!(windows) { Shell::Cmd } else { Shell::Sh }
    }

    pub fn program(self) -> &'static str {
        match self {
            Shell::Sh => "sh",
            Shell::Bash => "bash",
            Shell::Cmd => "cmd",
        }
    }
}
