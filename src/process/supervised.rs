//! A command run under a [supervisor](super::supervisor), seen from agent-orch: spawn it,
//! ask it to stop, learn how the command ended.
//!
//! Supervisors are kept: one that has reported its command's end waits, idle, for the next
//! command, so a run pays for starting our 28 MB binary once, not once per step (that exec
//! was ~1.7 ms of a step's ~2.5 ms). The alternatives weighed: a `fork` without exec needs
//! `unsafe`, which this crate forbids; `PR_SET_PDEATHSIG` on the commands needs it too (in
//! `pre_exec`), reaches only the direct child, and follows the spawning thread; agent-orch as
//! its own subreaper would not outlive its own SIGKILL. A supervisor runs one command at a
//! time, so what it finds left is exactly that command's; commands that run at the same time
//! (a service and the gates that test it) take one each. A command that is not seen to its
//! reported end (dropped, or its supervisor gone) retires its supervisor, which then kills
//! whatever is left and exits, as before.

use std::ffi::OsString;
use std::io::{IoSlice, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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

/// Supervisors waiting for a command. Each holds a socket to this process, so each ends with
/// it, idle or not.
static IDLE: Mutex<Vec<Supervisor>> = Mutex::new(Vec::new());

/// A supervisor process and the (blocking) socket to it.
struct Supervisor {
    process: Child,
    control: UnixStream,
}

impl Supervisor {
    /// An idle supervisor, or a new one.
    fn take(launcher: &Launcher) -> std::io::Result<(Self, bool)> {
        let idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match idle {
            Some(supervisor) => Ok((supervisor, true)),
            None => Self::start(launcher).map(|supervisor| (supervisor, false)),
        }
    }

    fn start(launcher: &Launcher) -> std::io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        let process = std::process::Command::new(&launcher.program)
            .args(&launcher.args)
            .env(SUPERVISOR_ENV, "1")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            // Out of our terminal's foreground group: Ctrl-C reaches agent-orch, which stops
            // the command itself.
            .process_group(0)
            .spawn()?;
        Ok(Self {
            process,
            control: ours,
        })
    }

    /// Sends `request` (one line) with the output pipe attached.
    fn send(&self, request: &[u8], output: &std::io::PipeWriter) -> std::io::Result<()> {
        let fds = [output.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut ancillary = SendAncillaryBuffer::new(&mut space);
        ancillary.push(SendAncillaryMessage::ScmRights(&fds));
        // NOSIGNAL: a supervisor that is gone is an error here, not a SIGPIPE.
        let sent = sendmsg(
            &self.control,
            &[IoSlice::new(request)],
            &mut ancillary,
            SendFlags::NOSIGNAL,
        )?;
        // The descriptor went with the first byte; a long request may need more writes.
        (&self.control).write_all(&request[sent..])
    }

    /// Closes the socket, upon which the supervisor kills whatever its command left and
    /// exits; a thread reaps it.
    fn retire(self) {
        let Self {
            mut process,
            control,
        } = self;
        drop(control);
        std::thread::spawn(move || process.wait());
    }
}

/// A command running under a supervisor. Dropping it before its reported end retires the
/// supervisor, which kills everything the command started.
pub(super) struct Supervised {
    /// `None` once the supervisor is gone.
    process: Option<Child>,
    control: Option<BufReader<tokio::net::UnixStream>>,
    /// A line being read; kept across cancelled reads.
    line: Vec<u8>,
    /// How the command ended, once the supervisor reported it (and so is idle again).
    reported: Option<Exit>,
    /// The supervisor is idle: the command ended, or failed to start.
    idle: bool,
}

impl Supervised {
    /// Starts `spec` under a supervisor, its output going to `output`.
    pub(super) async fn spawn(
        launcher: &Launcher,
        spec: &CommandSpec,
        output: std::io::PipeWriter,
    ) -> Result<Self, ProcessError> {
        let request = request_line(spec).map_err(|err| ProcessError::spawn(spec, err))?;
        let (supervisor, was_idle) =
            Supervisor::take(launcher).map_err(|err| ProcessError::spawn(spec, err))?;
        let supervisor = match supervisor.send(&request, &output) {
            Ok(()) => supervisor,
            // An idle supervisor may have been killed from outside: a new one gets the request.
            Err(_) if was_idle => {
                supervisor.retire();
                let fresh =
                    Supervisor::start(launcher).map_err(|err| ProcessError::spawn(spec, err))?;
                if let Err(err) = fresh.send(&request, &output) {
                    fresh.retire();
                    return Err(ProcessError::spawn(spec, err));
                }
                fresh
            }
            Err(err) => {
                supervisor.retire();
                return Err(ProcessError::spawn(spec, err));
            }
        };
        // The supervisor holds the pipe now; our copy must close for the output to end.
        drop(output);

        let mut supervised = Self::from(supervisor)?;
        match supervised.read_line().await {
            Ok(reply) if reply == "started" => Ok(supervised),
            Ok(reply) => {
                let errno = reply
                    .strip_prefix("failed ")
                    .and_then(|errno| errno.parse().ok());
                let err = match errno {
                    Some(errno) => {
                        // It said so, and waits for the next command.
                        supervised.idle = true;
                        std::io::Error::from_raw_os_error(errno)
                    }
                    None => std::io::Error::other("the supervisor ended before starting it"),
                };
                Err(ProcessError::spawn(spec, err))
            }
            Err(err) => Err(ProcessError::spawn(spec, err)),
        }
    }

    fn from(supervisor: Supervisor) -> Result<Self, ProcessError> {
        let Supervisor { process, control } = supervisor;
        let mut supervised = Self {
            process: Some(process),
            control: None,
            line: Vec::new(),
            reported: None,
            idle: false,
        };
        // On an error, dropping `supervised` retires the supervisor.
        control.set_nonblocking(true).map_err(ProcessError::pipe)?;
        let control = tokio::net::UnixStream::from_std(control).map_err(ProcessError::pipe)?;
        supervised.control = Some(BufReader::new(control));
        Ok(supervised)
    }

    /// Waits until the command has ended and the supervisor has killed whatever it left.
    pub(super) async fn wait(&mut self) -> Option<Exit> {
        if self.idle {
            return self.reported;
        }
        match self.read_line().await {
            Ok(status) => {
                self.reported = parse_status(&status);
                self.idle = self.reported.is_some();
                self.reported
            }
            // The supervisor itself was killed: all we know is its own end.
            Err(_) => {
                self.control = None;
                let mut process = self.process.take()?;
                let status = tokio::task::spawn_blocking(move || process.wait()).await;
                status.ok()?.ok().and_then(Exit::of)
            }
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

    async fn send(&mut self, request: &[u8]) {
        // A supervisor that is already gone has nothing left to stop.
        if let Some(control) = &mut self.control {
            let _ = control.get_mut().write_all(request).await;
        }
    }

    async fn read_line(&mut self) -> std::io::Result<String> {
        let Some(control) = &mut self.control else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        // Cancellation leaves what was read in `self.line`, for the next call to go on with.
        if control.read_until(b'\n', &mut self.line).await? == 0 || !self.line.ends_with(b"\n") {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = String::from_utf8_lossy(&self.line).trim_end().to_owned();
        self.line.clear();
        Ok(line)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        // Idle, and nothing unread that would be taken for the next command's reply.
        let reusable = self.idle
            && self.line.is_empty()
            && self
                .control
                .as_ref()
                .is_some_and(|control| control.buffer().is_empty());
        let control = self.control.take().map(|control| {
            let control = control.into_inner().into_std()?;
            control.set_nonblocking(false)?;
            Ok::<_, std::io::Error>(control)
        });
        match control {
            Some(Ok(control)) if reusable => IDLE
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Supervisor { process, control }),
            Some(Ok(control)) => Supervisor { process, control }.retire(),
            // The socket is closed already; only the reaping is left.
            _ => {
                std::thread::spawn(move || process.wait());
            }
        }
    }
}

/// The request for `spec`, as one line.
fn request_line(spec: &CommandSpec) -> std::io::Result<Vec<u8>> {
    let (program, args) = spec.argv();
    let request = Request {
        program: program.as_bytes().to_vec(),
        args: args.iter().map(|arg| arg.as_bytes().to_vec()).collect(),
        workdir: spec
            .workdir
            .as_ref()
            .map(|dir| dir.as_os_str().as_bytes().to_vec()),
        env: spec.env.clone(),
        stdout: spec
            .stdout
            .as_ref()
            .map(|path| path.as_os_str().as_bytes().to_vec()),
    };
    let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(line)
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
