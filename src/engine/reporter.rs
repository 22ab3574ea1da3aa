//! [`Reporter`]: what the engine feeds its events to. The reports themselves live in
//! `report`, above the engine.

use std::io;

use crate::engine::events::Event;

/// A consumer of engine events. Reporters write as events arrive, so an interrupted run
/// still leaves complete files up to the interruption.
pub trait Reporter {
    /// What the reporter writes (`junit.xml`, `console`), for error messages.
    fn name(&self) -> &str;

    fn on_event(&mut self, event: &Event) -> io::Result<()>;

    /// Called once after the last event, whether or not `RunFinished` came; flush and close
    /// files here.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// The SHA-256 of the audit log's last line so far, if this reporter keeps one: what a
    /// commit or pull request cites as the evidence of the run.
    fn audit_head(&self) -> Option<String> {
        None
    }
}
