//! Git, run as the `git` program in the checkout: what the run hashes (`run.source_hash`) and
//! how a fix leaves the machine (a commit of exactly the patched files, pushed to `origin`).
//!
//! Credentials never go on a command line: a token reaches git as an `http.extraheader`
//! through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` in its environment, where
//! neither `ps` nor an error message shows it.

mod branch;
mod source_hash;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

pub use branch::{Commit, commit_files, current_branch, push, remote_url};
pub use source_hash::source_hash;

use crate::core::secret::Secret;

#[derive(Debug, thiserror::Error)]
#[error("`git {command}` in `{}` failed: {detail}", dir.display())]
pub struct GitError {
    /// The subcommand and its plain arguments (never a credential).
    pub command: String,
    pub dir: PathBuf,
    /// git's last line of complaint, or why it could not start.
    pub detail: String,
    /// The whole of git's stderr, for the step log.
    pub stderr: String,
}

/// One git invocation: arguments, extra environment, optional stdin.
struct GitCommand<'a> {
    dir: &'a Path,
    args: Vec<&'a str>,
    env: Vec<(String, String)>,
    stdin: Option<&'a str>,
}

impl<'a> GitCommand<'a> {
    fn new(dir: &'a Path, args: &[&'a str]) -> Self {
        Self {
            dir,
            args: args.to_vec(),
            env: Vec::new(),
            stdin: None,
        }
    }

    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// An `http.extraheader` for this invocation only, set through the environment (after
    /// any `GIT_CONFIG_COUNT` entries the caller's environment already has).
    fn extra_header(mut self, header: &Secret) -> Self {
        let first_free: usize = std::env::var("GIT_CONFIG_COUNT")
            .ok()
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);
        self.env.extend([
            ("GIT_CONFIG_COUNT".to_owned(), (first_free + 1).to_string()),
            (
                format!("GIT_CONFIG_KEY_{first_free}"),
                "http.extraheader".to_owned(),
            ),
            (
                format!("GIT_CONFIG_VALUE_{first_free}"),
                header.expose().to_owned(),
            ),
        ]);
        self
    }

    fn stdin(mut self, text: &'a str) -> Self {
        self.stdin = Some(text);
        self
    }

    /// Runs git; its stdout as written, or the error with its stderr.
    async fn run(self) -> Result<String, GitError> {
        let fail = |detail: String, stderr: String| GitError {
            command: self.args.first().copied().unwrap_or_default().to_owned(),
            dir: self.dir.to_owned(),
            detail,
            stderr,
        };
        let mut command = tokio::process::Command::new("git");
        command
            .args(&self.args)
            .current_dir(self.dir)
            // Never wait for a password nobody will type.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|err| fail(format!("cannot start git: {err}"), String::new()))?;
        if let (Some(text), Some(mut stdin)) = (self.stdin, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .await
                .map_err(|err| fail(format!("cannot write to git: {err}"), String::new()))?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|err| fail(format!("cannot wait for git: {err}"), String::new()))?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            let detail = stderr
                .lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .map_or_else(|| output.status.to_string(), |line| line.trim().to_owned());
            return Err(fail(detail, stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
