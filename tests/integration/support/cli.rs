//! End-to-end CLI tests in the style of just's `Test` builder: a temp project, the real binary,
//! and the exit code, stdout and stderr checked together.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub(crate) struct Project {
    dir: tempfile::TempDir,
}

pub(crate) struct RunResult {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Project {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // A `.git` folder makes the temp dir the project root, as a real checkout would be.
        std::fs::create_dir(dir.path().join(".git")).expect("create .git");
        Self { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn file(&self, relative: &str, contents: &str) -> &Self {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(path, contents).expect("write file");
        self
    }

    pub(crate) fn read(&self, relative: &str) -> String {
        let path = self.dir.path().join(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    pub(crate) fn artifacts(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    /// The binary, run in the project folder with colours off and no inherited agent-orch env.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agent-orch"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("AGENT_ORCH_ENV")
            .env_remove("AGENT_ORCH_ARTIFACTS")
            .env_remove("AGENT_ORCH_COLOR")
            .env_remove("TF_BUILD")
            .stdin(Stdio::null());
        // Telemetry is on only where a test turns it on.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("OTEL_")
                || name == "APPLICATIONINSIGHTS_CONNECTION_STRING"
                || name == "TRACEPARENT"
            {
                command.env_remove(&*name);
            }
        }
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> RunResult {
        let output = self.command(args).output().expect("binary runs");
        RunResult::from(output)
    }

    /// `agent-orch run FILE --artifacts <project>/artifacts --quiet` plus `extra` arguments.
    pub(crate) fn run_workflow(&self, file: &str, extra: &[&str]) -> RunResult {
        let artifacts = self.artifacts();
        let artifacts = artifacts.to_str().expect("utf-8 path");
        let mut args = vec!["run", file, "--artifacts", artifacts, "--quiet"];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

impl From<Output> for RunResult {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl RunResult {
    #[track_caller]
    pub(crate) fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}
