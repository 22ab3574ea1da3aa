//! `gate`: run a command (lint, test, build) and pass when it exits 0.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::workflow::template::Template;

/// `gate: "npm test"` or `gate: {run, workdir, env}`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(from = "GateSyntax")]
pub struct GateConfig {
    pub run: Template,
    pub workdir: Option<Template>,
    pub env: IndexMap<String, Template>,
}

// Provisional: a string or a map; the real loader keeps spans through both forms.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum GateSyntax {
    Command(Template),
    Full {
        run: Template,
        #[serde(default)]
        workdir: Option<Template>,
        #[serde(default)]
        env: IndexMap<String, Template>,
    },
}

impl From<GateSyntax> for GateConfig {
    fn from(syntax: GateSyntax) -> Self {
        match syntax {
            GateSyntax::Command(run) => GateConfig {
                run,
                workdir: None,
                env: IndexMap::new(),
            },
            GateSyntax::Full { run, workdir, env } => GateConfig { run, workdir, env },
        }
    }
}
