//! What a `review` step accepts; run by `steps::review`, which hands it to the engine's repair
//! phase.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::workflow::span::Spanned;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// The name of an entry in `agents`.
    pub agent: Spanned<String>,
}
