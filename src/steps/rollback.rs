//! `rollback`: undo what this run deployed, restoring the revisions live before it started.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::workflow::span::Spanned;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// The id of the deploy step whose changes to undo; default: every deploy of this run.
    #[serde(default)]
    pub deployment: Option<Spanned<String>>,
}
