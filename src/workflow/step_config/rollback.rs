//! What a `rollback` step accepts; run by `steps::rollback`.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::workflow::duration::DurationSpec;
use crate::workflow::span::Spanned;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// The id of the deploy step whose changes to undo; default: every deploy of this run.
    #[serde(default)]
    pub deployment: Option<Spanned<String>>,
    /// How long a restored container may stay unready before the rollback fails (default `2m`).
    #[serde(default)]
    pub readiness_timeout: Option<DurationSpec>,
}
