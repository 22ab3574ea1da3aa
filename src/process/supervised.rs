//! A command run under a [supervisor](super::supervisor), seen from agent-orch: spawn it,
//! ask it to stop, learn how the command ended.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufStream};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

use super::supervisor::{KILL, Request, SUPERVISOR_ENV, TERMINATE};
use super::{CommandSpec, Exit, ProcessError};

/// How to start our own binary as a supervisor.
#[derive(Debug)]
pub(super) struct Launcher {
    program: PathBuf,
    args: Vec<OsString>,
}

static LAUNCHER: OnceLock<Launcher> = OnceLock::new();

/// This very executable, even if its file was replaced or deleted since it started (an
/// upgrade during a long run): the kernel resolves the link in the forked child, which is
/// still our image.
const CURRENT_EXE: &str = "/proc/self/exe";

/// Runs every later command under a supervisor started as this very executable. Only the
/// agent-orch binary can do that (its entry point answers [`SUPERVISOR_ENV`]); a program that
/// uses the library without calling this runs commands in a process group only.
pub fn supervise_with_current_exe() {
    let _ = LAUNCHER.set(Launcher {
        program: PathBuf::from(CURRENT_EXE),
        args: Vec::new(),
    });
}

/// The launcher, if commands are to be supervised. Unit tests start their own test binary,
/// with a filter that runs only the supervisor's entry point.
pub(super) fn launcher() -> Option<&'static Launcher> {
    #[cfg(test)]
    return Some(LAUNCHER.get_or_init(|| {
        Launcher {
            program: PathBuf::from(CURRENT_EXE),
            args: [
                "process::supervisor::tests::entry",
                "--exact",
                "--nocapture",
            ]
            .map(OsString::from)
            .to_vec(),
        }
    }));
    #[cfg(not(test))]
    LAUNCHER.get()
}

/// A running supervisor and the socket to it. Dropping it closes the socket, upon which the
/// supervisor kills everything the command started.
pub(super) struct Supervised {
    child: Child,
    control: BufStream<UnixStream>,
}

impl Supervised {
    /// Starts `spec` under a supervisor whose output (and the command's) goes to `output`.
    pub(super) async fn spawn(
        launcher: &Launcher,
        spec: &CommandSpec,
        output: std::io::PipeWriter,
    ) -> Result<Self, ProcessError> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(ProcessError::pipe)?;
        let mut command = Command::new(&launcher.program);
        command
            .args(&launcher.args)
            .env(SUPERVISOR_ENV, "1")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(output)
            // Out of our terminal's foreground group: Ctrl-C reaches agent-orch, which stops
            // the command itself.
            .process_group(0);
        spec.apply_context(&mut command);
        let spawned = command.spawn();
        // The command holds the other ends of the pipe and the socket; they must close here.
        drop(command);
        let child = spawned.map_err(|err| ProcessError::spawn(spec, err))?;

        ours.set_nonblocking(true).map_err(ProcessError::pipe)?;
        let control = UnixStream::from_std(ours).map_err(ProcessError::pipe)?;
        let mut supervised = Self {
            child,
            control: BufStream::new(control),
        };
        let (program, args) = spec.argv();
        let request = Request {
            program: program.as_bytes().to_vec(),
            args: args.iter().map(|arg| arg.as_bytes().to_vec()).collect(),
            stdout: spec
                .stdout
                .as_ref()
                .map(|path| path.as_os_str().as_bytes().to_vec()),
        };
        let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other);
        if let Ok(line) = &mut line {
            line.push(b'\n');
        }
        let started = async {
            supervised.control.write_all(&line?).await?;
            supervised.control.flush().await?;
            supervised.read_line().await
        };
        match started.await {
            Ok(reply) if reply == "started" => Ok(supervised),
            Ok(reply) => {
                let errno = reply
                    .strip_prefix("failed ")
                    .and_then(|errno| errno.parse().ok());
                let err = match errno {
                    Some(errno) => std::io::Error::from_raw_os_error(errno),
                    None => std::io::Error::other("the supervisor ended before starting it"),
                };
                Err(ProcessError::spawn(spec, err))
            }
            Err(err) => Err(ProcessError::spawn(spec, err)),
        }
    }

    /// Waits until the command has ended and the supervisor has killed whatever it left.
    pub(super) async fn wait(&mut self) -> Option<Exit> {
        let supervisor = self.child.wait().await.ok();
        match self.read_line().await {
            Ok(status) => parse_status(&status),
            // The supervisor itself was killed: all we know is its own end.
            Err(_) => supervisor.and_then(Exit::of),
        }
    }

    /// Asks for SIGTERM to every process of the command.
    pub(super) async fn terminate(&mut self) {
        self.send(TERMINATE).await;
    }

    /// Asks for SIGKILL to every process of the command.
    pub(super) async fn kill(&mut self) {
        self.send(KILL).await;
    }

    async fn send(&mut self, request: u8) {
        // A supervisor that is already gone has nothing left to stop.
        let _ = self.control.write_all(&[request]).await;
        let _ = self.control.flush().await;
    }

    async fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.control.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end().to_owned())
    }
}

fn parse_status(status: &str) -> Option<Exit> {
    let (kind, number) = status.split_once(' ')?;
    let number = number.parse().ok()?;
    match kind {
        "exit" => Some(Exit::Code(number)),
        "signal" => Some(Exit::Signal(number)),
        _ => None,
    }
}
