//! Reports: everything a run leaves behind, each fed by the engine's event stream.

use crate::engine::events::Event;

/// A consumer of engine events. Reporters write as events arrive, so an interrupted run
/// still leaves complete files up to the interruption.
pub trait Reporter {
    fn on_event(&mut self, event: &Event) -> std::io::Result<()>;

    /// Called once after the last event; flush and close files here.
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
