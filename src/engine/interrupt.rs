//! Ctrl-C, SIGTERM and pipeline cancel.
//!
//! The first signal cancels the run: the running step's process group is killed and the engine
//! moves on to the `on_give_up` steps (a rollback after a cancelled deploy is what people want).
//! A second signal cancels those too. Reports are always flushed.

use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Default)]
pub struct Interrupts {
    /// Cancelled by the first signal: stop the run.
    pub run: CancellationToken,
    /// Cancelled by the second signal: stop the clean-up as well.
    pub cleanup: CancellationToken,
}

impl Interrupts {
    /// Listens for signals for the rest of the process's life.
    pub fn listen() -> std::io::Result<Self> {
        let interrupts = Self::default();
        let mut signals = Signals::new()?;
        let handle = interrupts.clone();
        tokio::spawn(async move {
            signals.recv().await;
            handle.run.cancel();
            signals.recv().await;
            handle.cleanup.cancel();
        });
        Ok(interrupts)
    }
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }
}

#[cfg(windows)]
struct Signals;

#[cfg(windows)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn recv(&mut self) {
        // A failed registration leaves us uninterruptible; waiting forever is the honest result.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
