//! Child processes for steps: run a command in its own process group, stream its output,
//! stop it (and everything it started) on timeout, cancellation or drop.
//!
//! [`run_command`] is the one entry point; `gate`, `verify`'s scripts and anything else that
//! shells out go through it, so they share these guarantees:
//!
//! - stdout and stderr share one pipe, so the log reads in the order a terminal would show
//!   (unless stdout is data, sent to a file with [`CommandSpec::stdout_to`]);
//!   stdin is closed, so a command waiting for input fails instead of hanging;
//! - output is streamed in chunks to the [`OutputSink`]'s log file, live echo and bounded tail,
//!   never held whole in memory; secrets are redacted on the way (see [`crate::redact`]);
//! - the command leads a new process group. On timeout or cancellation the whole group gets
//!   SIGTERM, then SIGKILL after [`KILL_GRACE`]. When the command ends by itself, whatever it
//!   left running in the background is killed: a step's processes never outlive it;
//! - a process that escaped the group (`setsid`) and still holds the output pipe open cannot
//!   hang the run: reading stops [`DRAIN_TIMEOUT`] after the command ended.

#[cfg(target_os = "linux")]
mod descendants;
mod group;
mod output_sink;
mod outputs_file;
mod running;
#[cfg(target_os = "linux")]
mod supervised;
#[cfg(target_os = "linux")]
pub mod supervisor;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdout, Command};
use tokio_util::sync::CancellationToken;

pub use self::output_sink::{DEFAULT_TAIL_BYTES, DEFAULT_TAIL_LINES, OutputSink};
pub use self::outputs_file::{
    MAX_OUTPUTS_BYTES, OUTPUTS_ENV, OutputsError, OutputsErrorKind, OutputsFile, parse_outputs,
};
#[cfg(target_os = "linux")]
pub use self::supervised::supervise_with_current_exe;

use self::output_sink::{Captured, OpenSink};
use self::running::Running;
use crate::workflow::step_config::shell::Shell;

/// How long a stopped command's processes get between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_millis(500);

/// How long output is still read after the command ended and its group was killed.
pub const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Read size of the output copy loop: several pipe buffers' worth, so a busy command costs
/// few wake-ups.
const READ_CHUNK: usize = 256 * 1024;

/// What to run, where, and with which extra environment (added to this process's own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    pub program: Program,
    /// The working directory; this process's own when `None`.
    pub workdir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// Where stdout goes instead of the output, when the command's stdout is data (rendered
    /// manifests) and only its stderr is a log.
    pub stdout: Option<PathBuf>,
}

impl CommandSpec {
    /// A script run by `shell`.
    pub fn shell(shell: Shell, script: impl Into<String>) -> Self {
        Self::new(Program::Shell {
            shell,
            script: script.into(),
        })
    }

    /// A program run directly with `args`; no shell interprets anything.
    pub fn exec(
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self::new(Program::Exec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        })
    }

    fn new(program: Program) -> Self {
        Self {
            program,
            workdir: None,
            env: Vec::new(),
            stdout: None,
        }
    }

    /// Sends stdout to a new file at `path` (replacing one that exists); stderr alone goes to
    /// the output sink.
    pub fn stdout_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.stdout = Some(path.into());
        self
    }

    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The program name, for messages (`sh`, `bash`, `kubectl`).
    pub fn program_name(&self) -> String {
        match &self.program {
            Program::Shell { shell, .. } => shell.program().to_owned(),
            Program::Exec { program, .. } => program.to_string_lossy().into_owned(),
        }
    }

    /// The program to start and its arguments.
    fn argv(&self) -> (OsString, Vec<OsString>) {
        match &self.program {
            Program::Shell { shell, script } => shell.argv(script),
            Program::Exec { program, args } => (program.clone(), args.clone()),
        }
    }

    /// Adds the arguments to `command`, a command for [`CommandSpec::argv`]'s program.
    fn apply_program(&self, command: &mut Command) {
        match &self.program {
            Program::Shell { shell, script } => shell.apply_args(script, command),
            Program::Exec { args, .. } => {
                command.args(args);
            }
        }
    }

    /// The working directory and the extra environment.
    fn apply_context(&self, command: &mut Command) {
        if let Some(dir) = &self.workdir {
            command.current_dir(dir);
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    Shell {
        shell: Shell,
        script: String,
    },
    Exec {
        program: OsString,
        args: Vec<OsString>,
    },
}

// The workflow language names the shell; how it is started is this module's.
impl Shell {
    /// The shell's program (POSIX guarantees `/bin/sh`; naming it saves a PATH search on
    /// every step) and its arguments for `script`.
    fn argv(self, script: &str) -> (OsString, Vec<OsString>) {
        let program = match self {
            Shell::Sh if cfg!(unix) => "/bin/sh",
            _ => self.program(),
        };
        let args: &[&str] = match self {
            Shell::Sh => &["-e", "-c"],
            Shell::Bash => &["--noprofile", "--norc", "-e", "-o", "pipefail", "-c"],
            Shell::Cmd => &["/D", "/S", "/C"],
        };
        let mut args: Vec<OsString> = args.iter().map(OsString::from).collect();
        args.push(script.into());
        (program.into(), args)
    }

    fn apply_args(self, script: &str, command: &mut Command) {
        let (_, mut args) = self.argv(script);
        // cmd does its own parsing of its command line; Rust's quoting would break it.
        if cfg!(windows) && self == Shell::Cmd {
            args.pop();
            command.args(args);
            #[cfg(windows)]
            command.raw_arg(format!("\"{script}\""));
        } else {
            command.args(args);
        }
    }
}

/// How a command's main process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    /// Killed by this signal (Unix).
    Signal(i32),
}

impl Exit {
    fn of(status: std::process::ExitStatus) -> Option<Self> {
        if let Some(code) = status.code() {
            return Some(Exit::Code(code));
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            status.signal().map(Exit::Signal)
        }
        #[cfg(not(unix))]
        None
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => {
                write!(f, "killed by signal {signal}")?;
                #[cfg(unix)]
                if let Ok(name) = nix::sys::signal::Signal::try_from(signal) {
                    write!(f, " ({})", name.as_str())?;
                }
                Ok(())
            }
        }
    }
}

/// What a finished command left: how it ended, how long it took, and the end of its output.
#[derive(Clone, Debug)]
pub struct CommandResult {
    /// `None` only if the main process could not be reaped even after SIGKILL.
    pub exit: Option<Exit>,
    /// Stopped because the timeout passed.
    pub timed_out: bool,
    /// Stopped because the cancellation token fired.
    pub cancelled: bool,
    /// From spawn to the main process's end.
    pub duration: Duration,
    /// The last lines of output (bounded by the sink's tail limit), secrets redacted.
    pub tail: String,
    /// Total bytes of output the command wrote.
    pub output_bytes: u64,
    /// A process outside the group still held the output open when reading stopped.
    pub output_left_open: bool,
}

impl CommandResult {
    /// Ended by itself with exit code 0.
    pub fn success(&self) -> bool {
        !self.timed_out && !self.cancelled && self.exit == Some(Exit::Code(0))
    }
}

/// Runs `spec` to its end, or until `timeout` passes or `cancel` fires, streaming its output
/// into `sink`. Errors are failures to run it at all (or to write its log); a command that
/// fails is an `Ok` result with its exit.
pub async fn run_command(
    spec: &CommandSpec,
    sink: OutputSink,
    cancel: &CancellationToken,
    timeout: Option<Duration>,
) -> Result<CommandResult, ProcessError> {
    let sink = sink.open()?;
    let (reader, writer) = std::io::pipe().map_err(ProcessError::pipe)?;
    let started = Instant::now();
    let mut running = Running::spawn(spec, writer).await?;

    let stop_reading = CancellationToken::new();
    let mut copier = tokio::spawn(copy_output(
        output_reader(reader)?,
        sink,
        stop_reading.clone(),
    ));

    let deadline = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let (exit, timed_out, cancelled) = tokio::select! {
        exit = running.wait() => (exit, false, false),
        () = deadline => (running.stop().await, true, false),
        () = cancel.cancelled() => (running.stop().await, false, true),
    };
    let duration = started.elapsed();
    // Background processes the command left behind end with it.
    running.end();

    let (copied, output_left_open) = match tokio::time::timeout(DRAIN_TIMEOUT, &mut copier).await {
        Ok(copied) => (copied, false),
        Err(_) => {
            stop_reading.cancel();
            (copier.await, true)
        }
    };
    let captured =
        copied.map_err(|err| ProcessError::read_output(std::io::Error::other(err)))??;

    Ok(CommandResult {
        exit,
        timed_out,
        cancelled,
        duration,
        tail: captured.tail,
        output_bytes: captured.bytes,
        output_left_open,
    })
}

/// The read end of the output pipe, registered with the async runtime.
fn output_reader(reader: std::io::PipeReader) -> Result<ChildStdout, ProcessError> {
    #[cfg(unix)]
    let pipe = std::process::ChildStdout::from(std::os::fd::OwnedFd::from(reader));
    #[cfg(windows)]
    let pipe = std::process::ChildStdout::from(std::os::windows::io::OwnedHandle::from(reader));
    ChildStdout::from_std(pipe).map_err(ProcessError::pipe)
}

/// Copies the output into the sink until the pipe closes or `stop` fires.
async fn copy_output(
    mut reader: ChildStdout,
    mut sink: OpenSink,
    stop: CancellationToken,
) -> Result<Captured, ProcessError> {
    let mut buf = vec![0; READ_CHUNK];
    loop {
        let read = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            read = reader.read(&mut buf) => read,
        };
        match read {
            Ok(0) => break,
            Ok(len) => sink.write(&buf[..len]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(ProcessError::read_output(err)),
        }
    }
    sink.finish()
}

/// A command could not be run, or its output not recorded.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct ProcessError {
    pub kind: ProcessErrorKind,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessErrorKind {
    #[error("failed to start `{program}`")]
    Spawn { program: String },
    #[error("failed to create the output pipe")]
    Pipe,
    #[error("failed to read the command's output")]
    ReadOutput,
    #[error("failed to create log file `{}`", .0.display())]
    CreateLog(PathBuf),
    #[error("failed to write log file `{}`", .0.display())]
    WriteLog(PathBuf),
}

impl ProcessError {
    fn new(
        kind: ProcessErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    fn spawn(spec: &CommandSpec, err: std::io::Error) -> Self {
        Self::new(
            ProcessErrorKind::Spawn {
                program: spec.program_name(),
            },
            err,
        )
    }

    fn pipe(err: std::io::Error) -> Self {
        Self::new(ProcessErrorKind::Pipe, err)
    }

    fn read_output(err: std::io::Error) -> Self {
        Self::new(ProcessErrorKind::ReadOutput, err)
    }

    fn create_log(path: &Path, err: std::io::Error) -> Self {
        Self::new(ProcessErrorKind::CreateLog(path.to_owned()), err)
    }

    fn write_log(path: &Path, err: std::io::Error) -> Self {
        Self::new(ProcessErrorKind::WriteLog(path.to_owned()), err)
    }
}
