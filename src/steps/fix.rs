//! `fix`: ask the fixer agent for a unified diff that repairs the last failure.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::workflow::span::Spanned;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixConfig {
    /// The name of an entry in `agents`.
    pub agent: Spanned<String>,
}
