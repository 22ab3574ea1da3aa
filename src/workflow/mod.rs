//! The workflow language: how a YAML file becomes a validated [`model::Workflow`].

pub mod duration;
pub mod model;
pub mod span;
pub mod template;
