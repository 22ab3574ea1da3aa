//! A spawned command, however it is held: under a supervisor (Linux, when this is the
//! agent-orch binary), or as the leader of a process group (elsewhere, and for programs that
//! use the library without being able to start themselves as a supervisor).

use tokio::process::{Child, Command};

use super::group::{self, ProcessGroup};
#[cfg(target_os = "linux")]
use super::supervised::{self, Supervised};
use super::{CommandSpec, Exit, KILL_GRACE, ProcessError};

pub(super) enum Running {
    Grouped {
        child: Child,
        group: ProcessGroup,
    },
    #[cfg(target_os = "linux")]
    Supervised(Supervised),
}

impl Running {
    /// Starts `spec` with its stdout and stderr going to `output`.
    pub(super) async fn spawn(
        spec: &CommandSpec,
        output: std::io::PipeWriter,
    ) -> Result<Self, ProcessError> {
        #[cfg(target_os = "linux")]
        if let Some(launcher) = supervised::launcher() {
            return Supervised::spawn(launcher, spec, output)
                .await
                .map(Running::Supervised);
        }
        let stdout = match &spec.stdout {
            Some(path) => std::process::Stdio::from(
                std::fs::File::create(path).map_err(|err| ProcessError::spawn(spec, err))?,
            ),
            None => std::process::Stdio::from(output.try_clone().map_err(ProcessError::pipe)?),
        };
        let mut command = Command::new(spec.argv().0);
        spec.apply_program(&mut command);
        spec.apply_context(&mut command);
        command
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(output);
        group::isolate(&mut command);
        let spawned = command.spawn();
        // The command holds our copies of the pipe's write end; only once they are closed does
        // the reader see the end of the output when the command's processes are gone.
        drop(command);
        let child = spawned.map_err(|err| ProcessError::spawn(spec, err))?;
        let group = ProcessGroup::of(&child);
        Ok(Running::Grouped { child, group })
    }

    /// Waits for the command to end.
    pub(super) async fn wait(&mut self) -> Option<Exit> {
        match self {
            Running::Grouped { child, .. } => child.wait().await.ok().and_then(Exit::of),
            #[cfg(target_os = "linux")]
            Running::Supervised(supervised) => supervised.wait().await,
        }
    }

    /// Stops the command: SIGTERM to all its processes, SIGKILL after the grace period.
    pub(super) async fn stop(&mut self) -> Option<Exit> {
        self.terminate().await;
        if let Ok(exit) = tokio::time::timeout(KILL_GRACE, self.wait()).await {
            return exit;
        }
        self.kill().await;
        // SIGKILL cannot be ignored; this only guards against a process stuck in the kernel.
        tokio::time::timeout(KILL_GRACE, self.wait())
            .await
            .ok()
            .flatten()
    }

    /// Kills whatever the ended command left running in the background. (A supervisor has
    /// done so before it reported the command's end.)
    pub(super) fn end(&mut self) {
        if let Running::Grouped { child, group } = self {
            group.kill(child);
        }
    }

    async fn terminate(&mut self) {
        match self {
            Running::Grouped { child, group } => group.terminate(child),
            #[cfg(target_os = "linux")]
            Running::Supervised(supervised) => supervised.terminate().await,
        }
    }

    async fn kill(&mut self) {
        match self {
            Running::Grouped { child, group } => group.kill(child),
            #[cfg(target_os = "linux")]
            Running::Supervised(supervised) => supervised.kill().await,
        }
    }
}
