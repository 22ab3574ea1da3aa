//! The process group a command runs in, so that stopping it stops everything it started.
//!
//! On Unix the command leads a new process group (`setpgid(0, 0)` at spawn) and every stop is
//! a `killpg`, which reaches grandchildren such as `sh -c 'sleep 100 & wait'`. On Windows only
//! the direct child is killed for now; a job object would be the equivalent of the group.

use tokio::process::{Child, Command};

/// Makes the command that `command` will spawn lead its own process group.
pub(crate) fn isolate(command: &mut Command) {
    #[cfg(unix)]
    command.process_group(0);
    // The child is killed when its handle is dropped; the group by `ProcessGroup`'s drop.
    command.kill_on_drop(true);
}

/// A spawned command's process group. Dropping it kills whatever is left of the group.
pub(crate) struct ProcessGroup {
    /// `None` once the group has been killed: its id may then be reused by an unrelated group.
    #[cfg(unix)]
    id: Option<nix::unistd::Pid>,
}

#[cfg(unix)]
impl ProcessGroup {
    /// The group led by `child`, which must have been spawned from an [`isolate`]d command.
    pub(crate) fn of(child: &Child) -> Self {
        let id = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(nix::unistd::Pid::from_raw);
        Self { id }
    }

    /// Asks every process of the group to stop (SIGTERM).
    pub(crate) fn terminate(&self, _child: &mut Child) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// Kills every process of the group (SIGKILL); later calls do nothing.
    pub(crate) fn kill(&mut self, _child: &mut Child) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.id = None;
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(id) = self.id {
            // ESRCH (the group is already gone) is the usual, harmless, outcome.
            let _ = nix::sys::signal::killpg(id, signal);
        }
    }
}

#[cfg(unix)]
impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(windows)]
impl ProcessGroup {
    pub(crate) fn of(_child: &Child) -> Self {
        Self {}
    }

    pub(crate) fn terminate(&self, child: &mut Child) {
        // Windows has no polite stop for a console process tree that we could rely on.
        let _ = child.start_kill();
    }

    pub(crate) fn kill(&mut self, child: &mut Child) {
        let _ = child.start_kill();
    }
}
