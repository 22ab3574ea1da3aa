//! The coordination hub for agent fleets (`agent-orch hub ...`): a store of projects, tasks,
//! agents and assignments (SQLite or PostgreSQL), an atomic claim so a task is never assigned
//! twice, and the HTTP API, WebSocket events and dashboard served over it.

pub mod api;
pub mod client;
pub mod error;
pub mod events;
pub mod forecast;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod pull_requests;
mod relay;
pub mod server;
pub mod store;
