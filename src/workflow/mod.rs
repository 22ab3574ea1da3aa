//! The workflow language: how a YAML file becomes a validated [`model::Workflow`].

pub mod diagnostic;
pub mod duration;
pub mod model;
mod node;
mod node_deserializer;
pub mod span;
pub mod template;
