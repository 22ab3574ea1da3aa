//! The supervisor: a re-exec of our own binary that runs commands, one at a time, and makes
//! sure nothing a command started outlives it, or outlives agent-orch.
//!
//! Why a process of its own (Linux): a process group does not hold a `setsid` daemon, and
//! nothing in a dead agent-orch can kill anything. The supervisor is a *child subreaper*
//! (`PR_SET_CHILD_SUBREAPER`): every descendant of the command that loses its parent, daemons
//! included, is re-parented to it instead of to init, so "the command's processes" is exactly
//! "the supervisor's descendants", whatever they did to their group or session. It holds a
//! socket to agent-orch as its stdin; when agent-orch dies, even by SIGKILL, the kernel closes
//! that socket and the supervisor kills every descendant. A pipe was chosen over
//! `PR_SET_PDEATHSIG` because the death signal follows the *thread* that spawned the child,
//! and tokio spawns from worker threads that may end; cgroups v2 would do the same job but are
//! often neither mounted nor writable (CI containers, this machine's hybrid v1 layout).
//!
//! Why it outlives its command (see `process::supervised`): starting the 28 MB binary cost
//! ~1.7 ms, more than the rest of a step, so a supervisor that has finished a command waits for
//! the next one, and a step pays only for the fork and exec of its own command. It still runs
//! one command at a time: with several at once, an orphan re-parented to it could belong to
//! any of them, and the end of one would have to guess what to kill. Commands that run side by
//! side (a service and the gates that test it) each get a supervisor of their own.
//!
//! The protocol on the socket, agent-orch → supervisor, one line each: a JSON `Request`,
//! sent with the command's output pipe attached (`SCM_RIGHTS`); `T` (SIGTERM every
//! descendant) or `K` (SIGKILL them). End of file means agent-orch is gone (SIGKILL them, then
//! exit). Supervisor → agent-orch: `started` or `failed ERRNO` once the command was spawned,
//! and `exit CODE` or `signal NUMBER` when it ended and everything it left was killed; then
//! the supervisor is ready for the next request.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
use serde::{Deserialize, Serialize};

use super::Exit;
use super::descendants::descendants;

/// Set (to `1`) in the environment of our binary when it is started as a supervisor.
pub const SUPERVISOR_ENV: &str = "AGENT_ORCH_SUPERVISOR";

/// Asks the supervisor to send SIGTERM to every descendant.
pub(super) const TERMINATE: &[u8] = b"T\n";
/// Asks the supervisor to send SIGKILL to every descendant.
pub(super) const KILL: &[u8] = b"K\n";

/// How long the clean-up waits between rounds of killing what is left (a process may fork
/// between being listed and being killed).
const KILL_ROUND: Duration = Duration::from_millis(5);

/// How much of the socket one read takes.
const READ_CHUNK: usize = 64 * 1024;

/// The command to run, as raw bytes so that any Unix argument survives the trip.
#[derive(Serialize, Deserialize)]
pub(super) struct Request {
    pub(super) program: Vec<u8>,
    pub(super) args: Vec<Vec<u8>>,
    /// A file for the command's stdout (created or truncated), instead of the output.
    #[serde(default)]
    pub(super) stdout: Option<Vec<u8>>,
    /// The working directory; the supervisor's own (agent-orch's) when `None`.
    pub(super) workdir: Option<Vec<u8>>,
    /// Added to the supervisor's environment, which is agent-orch's.
    pub(super) env: Vec<(String, String)>,
}

/// Whether this process was started as a supervisor.
pub fn requested() -> bool {
    std::env::var_os(SUPERVISOR_ENV).is_some()
}

/// Runs the supervisor until agent-orch closes the socket; see the module docs.
pub fn run() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)?;
    let control = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let shared = Arc::new(Shared::default());
    std::thread::spawn({
        let shared = Arc::clone(&shared);
        let control = control.try_clone()?;
        move || wait_for_each(&shared, &control)
    });

    let mut messages = Messages::new(control.try_clone()?);
    while let Some(message) = messages.next() {
        match message {
            Message::Run(request, output) => start(request, output, &shared, &control),
            Message::Terminate => signal_all(Signal::SIGTERM, &shared.reaping),
            Message::Kill => signal_all(Signal::SIGKILL, &shared.reaping),
        }
    }
    // agent-orch is gone: nothing it started may keep running.
    signal_all(Signal::SIGKILL, &shared.reaping);
    kill_all(&shared.reaping);
    Ok(())
}

/// What the two threads share: the turn of reaping and signalling (a pid listed as ours cannot
/// be reaped, and reused by an unrelated process, before it is signalled), and the command
/// being waited for.
#[derive(Default)]
struct Shared {
    reaping: Mutex<()>,
    running: Mutex<Option<Pid>>,
    started: Condvar,
}

/// Spawns the requested command and hands it to the waiting thread.
fn start(request: Request, output: Option<OwnedFd>, shared: &Shared, control: &UnixStream) {
    let mut running = shared
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // agent-orch sends a request only to an idle supervisor, with the output pipe attached.
    let spawned = match output {
        _ if running.is_some() => Err(std::io::Error::from_raw_os_error(Errno::EBUSY as i32)),
        None => Err(std::io::Error::from_raw_os_error(Errno::EBADF as i32)),
        Some(output) => spawn(request, output),
    };
    match spawned {
        Ok(main) => {
            // Reported before the command's end can be.
            report(control, "started");
            *running = Some(main);
            shared.started.notify_one();
        }
        Err(err) => report(
            control,
            &format!("failed {}", err.raw_os_error().unwrap_or(0)),
        ),
    }
}

fn spawn(request: Request, output: OwnedFd) -> std::io::Result<Pid> {
    let stdout = match request.stdout {
        Some(path) => Stdio::from(std::fs::File::create(OsString::from_vec(path))?),
        None => Stdio::from(output.try_clone()?),
    };
    let mut command = std::process::Command::new(OsString::from_vec(request.program));
    command
        .args(request.args.into_iter().map(OsString::from_vec))
        .env_remove(SUPERVISOR_ENV)
        .envs(request.env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(output))
        // Its own group, so that a `kill 0` in the command cannot reach the supervisor.
        .process_group(0);
    if let Some(workdir) = request.workdir {
        command.current_dir(OsString::from_vec(workdir));
    }
    let spawned = command.spawn();
    // With our copies of the output pipe: only the command's processes hold it now, so
    // agent-orch sees the end of the output when they are gone.
    drop(command);
    // Pids fit in an i32 (the kernel's pid_t); 0 would match no child, and the command's end
    // would then be learnt from the last child reaped.
    Ok(Pid::from_raw(i32::try_from(spawned?.id()).unwrap_or(0)))
}

/// The waiting thread: for each command, waits for its end, kills what it left, reports.
fn wait_for_each(shared: &Shared, control: &UnixStream) {
    loop {
        let main = {
            let mut running = shared
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(main) = *running {
                    break main;
                }
                running = shared
                    .started
                    .wait(running)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let exit = wait_for(main, &shared.reaping);
        kill_all(&shared.reaping);
        // Idle again before the report: agent-orch may send the next request right after it.
        *shared
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        match exit {
            Some(Exit::Code(code)) => report(control, &format!("exit {code}")),
            Some(Exit::Signal(signal)) => report(control, &format!("signal {signal}")),
            // Only when the children were reaped by the end of agent-orch's clean-up.
            None => {}
        }
    }
}

/// One line to agent-orch, in one write so the two threads' lines cannot mix. agent-orch may
/// be gone; then nobody needs it, and the end of file on the socket ends this process.
fn report(mut control: &UnixStream, line: &str) {
    let _ = control.write_all(format!("{line}\n").as_bytes());
}

/// A message from agent-orch.
enum Message {
    Run(Request, Option<OwnedFd>),
    Terminate,
    Kill,
}

/// The messages on the socket, with the descriptors sent along with them.
struct Messages {
    control: UnixStream,
    chunk: Vec<u8>,
    buffer: Vec<u8>,
    received: VecDeque<OwnedFd>,
}

impl Messages {
    fn new(control: UnixStream) -> Self {
        Self {
            control,
            chunk: vec![0; READ_CHUNK],
            buffer: Vec::new(),
            received: VecDeque::new(),
        }
    }

    /// The next message; `None` once agent-orch has closed the socket (or it failed).
    fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                match &line[..end] {
                    b"T" => return Some(Message::Terminate),
                    b"K" => return Some(Message::Kill),
                    json => {
                        // A line that is not a request is a bug in agent-orch: it gets no answer
                        // it could mistake for its command's, and the end of file ends this.
                        let request = serde_json::from_slice(json).ok()?;
                        return Some(Message::Run(request, self.received.pop_front()));
                    }
                }
            }
            if !self.receive() {
                return None;
            }
        }
    }

    /// Reads what is there; false at the end of file.
    fn receive(&mut self) -> bool {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let read = loop {
            match recvmsg(
                &self.control,
                &mut [IoSliceMut::new(&mut self.chunk)],
                &mut ancillary,
                // Not inherited by the commands spawned later.
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return false,
                Ok(read) => break read.bytes,
            }
        };
        for message in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                self.received.extend(fds);
            }
        }
        self.buffer.extend_from_slice(&self.chunk[..read]);
        read > 0
    }
}

fn signal_all(signal: Signal, reaping: &Mutex<()>) {
    let _turn = reaping.lock().unwrap_or_else(PoisonError::into_inner);
    for pid in descendants(Pid::this()) {
        // ESRCH: it ended meanwhile.
        let _ = kill(pid, signal);
    }
}

/// Reaps children (the command and re-parented orphans) until the command has ended.
fn wait_for(main: Pid, reaping: &Mutex<()>) -> Option<Exit> {
    loop {
        // Wait without reaping, so the reaping itself can happen in turn with signalling.
        match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(Errno::EINTR) | Ok(_) => {}
            Err(_) => return None,
        }
        let _turn = reaping.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, exit) = reap(main);
        if exit.is_some() {
            return exit;
        }
    }
}

/// Reaps every child that has ended; returns whether children remain, and the command's exit
/// if it was among them.
fn reap(main: Pid) -> (bool, Option<Exit>) {
    let mut exit = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => exit = Some(Exit::Code(code)),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == main => {
                exit = Some(Exit::Signal(signal as i32));
            }
            Ok(WaitStatus::StillAlive) => return (true, exit),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return (false, exit),
        }
    }
}

/// Kills every descendant, round after round, until none is left. As a subreaper, having no
/// child means having no descendant: the usual case, a command that left nothing behind,
/// costs no walk over `/proc`.
fn kill_all(reaping: &Mutex<()>) {
    loop {
        let children_left = {
            let _turn = reaping.lock().unwrap_or_else(PoisonError::into_inner);
            reap(Pid::from_raw(0)).0
        };
        if !children_left {
            return;
        }
        signal_all(Signal::SIGKILL, reaping);
        std::thread::sleep(KILL_ROUND);
    }
}

#[cfg(test)]
mod tests {
    /// Not a test: the entry point through which this crate's unit tests run the supervisor.
    /// A unit-test binary cannot be started as `agent-orch`, so `supervised` starts it with a
    /// filter that selects only this function, with [`super::SUPERVISOR_ENV`] set.
    #[test]
    fn entry() {
        if super::requested() {
            let code = i32::from(super::run().is_err());
            std::process::exit(code);
        }
    }
}
