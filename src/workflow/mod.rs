//! The workflow language: how a YAML file becomes a validated [`model::Workflow`].
//!
//! The pipeline, one file per stage:
//!
//! ```text
//! node (YAML → spanned node tree) → expand (`template:` includes) → decode (node → model,
//! via node_deserializer) → validate (references, limits, template variables) → Workflow
//! ```
//!
//! Every stage reports [`Diagnostic`]s pointing at `file:line:col`; [`load`] returns all of
//! them at once. [`environment::render`] renders the selected environment's values when a run
//! starts; [`template::Renderer`] renders templates lazily when steps run, [`schema()`]
//! describes the format as JSON Schema and [`plan()`] shows the expanded workflow.
//!
//! Adding a step kind: its settings type in [`step_config`]`::<kind>` (serde `Deserialize` with
//! `deny_unknown_fields`, and `JsonSchema`) and a line in the table of `step_kind::step_kinds!`,
//! from which the [`model::StepKind`] enum, its keys, the decoder and the schema are expanded.
//! Anything a step renders should be a [`template::Template`]: the loader
//! checks every one of them statically.

mod decode;
pub mod dependency_order;
pub mod diagnostic;
pub mod duration;
pub mod environment;
pub mod expand;
pub mod lint;
mod load;
pub mod model;
mod node;
mod node_deserializer;
mod plan;
mod schema;
pub mod span;
pub mod step_config;
pub(crate) mod step_kind;
pub mod template;
mod validate;

pub use diagnostic::{Diagnostic, DiagnosticKind, Diagnostics};
pub use load::{LoadOptions, load};
pub use model::Workflow;
pub use plan::plan;
pub use schema::schema;
