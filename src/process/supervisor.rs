//! The supervisor: a re-exec of our own binary that runs one command and makes sure nothing
//! the command started outlives it, or outlives agent-orch.
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
//! The protocol on the socket, agent-orch → supervisor: one JSON line, the `Request`; then
//! single bytes, `T` (SIGTERM every descendant) or `K` (SIGKILL them); end of
//! file means agent-orch is gone (SIGKILL them). Supervisor → agent-orch: `started` or
//! `failed ERRNO` once the command was spawned, and `exit CODE` or `signal NUMBER` when it
//! ended and everything it left was killed. The command's output goes to the supervisor's
//! stderr, which agent-orch made the output pipe; the supervisor's stdout is null.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::Exit;
use super::descendants::descendants;

/// Set (to `1`) in the environment of our binary when it is started as a supervisor.
pub const SUPERVISOR_ENV: &str = "AGENT_ORCH_SUPERVISOR";

/// Asks the supervisor to send SIGTERM to every descendant.
pub(super) const TERMINATE: u8 = b'T';
/// Asks the supervisor to send SIGKILL to every descendant.
pub(super) const KILL: u8 = b'K';

/// How long the clean-up waits between rounds of killing what is left (a process may fork
/// between being listed and being killed).
const KILL_ROUND: Duration = Duration::from_millis(5);

/// The command to run, as raw bytes so that any Unix argument survives the trip.
#[derive(Serialize, Deserialize)]
pub(super) struct Request {
    pub(super) program: Vec<u8>,
    pub(super) args: Vec<Vec<u8>>,
    /// A file for the command's stdout (created or truncated), instead of the output.
    #[serde(default)]
    pub(super) stdout: Option<Vec<u8>>,
}

/// Whether this process was started as a supervisor.
pub fn requested() -> bool {
    std::env::var_os(SUPERVISOR_ENV).is_some()
}

/// Runs the supervisor to its end; see the module docs.
pub fn run() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)?;
    let mut control = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut requests = BufReader::new(control.try_clone()?);
    let mut line = String::new();
    requests.read_line(&mut line)?;
    let request: Request = serde_json::from_str(&line)?;

    let output = std::io::stderr().as_fd().try_clone_to_owned()?;
    let stdout = match request.stdout {
        Some(path) => match std::fs::File::create(OsString::from_vec(path)) {
            Ok(file) => Stdio::from(file),
            Err(err) => {
                writeln!(control, "failed {}", err.raw_os_error().unwrap_or(0))?;
                return Ok(());
            }
        },
        None => Stdio::from(output.try_clone()?),
    };
    let spawned = std::process::Command::new(OsString::from_vec(request.program))
        .args(request.args.into_iter().map(OsString::from_vec))
        .env_remove(SUPERVISOR_ENV)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(output))
        // Its own group, so that a `kill 0` in the command cannot reach the supervisor.
        .process_group(0)
        .spawn();
    let main = match spawned {
        // Pids fit in an i32 (the kernel's pid_t); 0 would match no child, and the command's
        // end would then be learnt from the last child reaped.
        Ok(child) => Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)),
        Err(err) => {
            writeln!(control, "failed {}", err.raw_os_error().unwrap_or(0))?;
            return Ok(());
        }
    };
    // From here on nothing may return early: whatever happens, the clean-up below must run.
    // (agent-orch may already be gone, then this write fails and `obey` sees the socket closed.)
    let _ = writeln!(control, "started");

    // Reaping and signalling take turns: a pid listed as ours cannot be reaped (and reused by
    // an unrelated process) before it is signalled.
    let reaping = Arc::new(Mutex::new(()));
    std::thread::spawn({
        let reaping = Arc::clone(&reaping);
        move || obey(requests, &reaping)
    });
    let exit = wait_for(main, &reaping);
    kill_all(&reaping);
    // agent-orch may be gone; then nobody needs the status.
    let _ = match exit {
        Some(Exit::Code(code)) => writeln!(control, "exit {code}"),
        Some(Exit::Signal(signal)) => writeln!(control, "signal {signal}"),
        None => Ok(()),
    };
    Ok(())
}

/// Carries out agent-orch's requests until it closes the socket, then kills everything.
fn obey(requests: BufReader<UnixStream>, reaping: &Mutex<()>) {
    for byte in requests.bytes() {
        match byte {
            Ok(TERMINATE) => signal_all(Signal::SIGTERM, reaping),
            Ok(KILL) => signal_all(Signal::SIGKILL, reaping),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    signal_all(Signal::SIGKILL, reaping);
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
