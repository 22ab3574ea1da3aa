//! The engine: runs a workflow's iterations, decides when to repair and when to stop.

pub mod events;
