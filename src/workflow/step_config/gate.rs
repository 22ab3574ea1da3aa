//! What a `gate` step (and a `service`, which takes the same keys) accepts; run by
//! `steps::gate`.

use std::fmt;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::workflow::span::Spanned;
use crate::workflow::step_config::shell::Shell;
use crate::workflow::template::Template;

/// `gate: "npm test"` or `gate: {run, shell, workdir, env}`.
#[derive(Clone, Debug)]
pub struct GateConfig {
    pub run: Template,
    /// The shell `run` goes through; [`Shell::platform_default`] when not given.
    pub shell: Option<Shell>,
    /// Where the command runs, relative to the workflow's repository.
    pub workdir: Option<Template>,
    /// Extra environment variables for the command.
    pub env: IndexMap<String, Template>,
}

/// The map form, with unknown keys refused where they are written.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "GateCommand")]
struct GateMap {
    /// The command line; a multi-line script is fine.
    run: Template,
    /// The shell that runs `run`: `sh` (default on Unix), `bash`, or `cmd` (default on Windows).
    #[serde(default)]
    shell: Option<Shell>,
    /// Where the command runs, relative to the workflow's repository.
    #[serde(default)]
    workdir: Option<Template>,
    /// Extra environment variables for the command.
    #[serde(default)]
    env: IndexMap<String, Template>,
}

/// What a `gate:` node holds before its span is attached.
enum GateNode {
    Command(String),
    Map(GateMap),
}

impl<'de> Deserialize<'de> for GateNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GateVisitor;

        impl<'de> Visitor<'de> for GateVisitor {
            type Value = GateNode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command string or a map with `run` (and `shell`, `workdir`, `env`)")
            }

            fn visit_str<E: de::Error>(self, command: &str) -> Result<GateNode, E> {
                Ok(GateNode::Command(command.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<GateNode, A::Error> {
                GateMap::deserialize(MapAccessDeserializer::new(map)).map(GateNode::Map)
            }
        }

        deserializer.deserialize_any(GateVisitor)
    }
}

impl<'de> Deserialize<'de> for GateConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read through `Spanned` so the short form's command keeps the node's position.
        let node = Spanned::<GateNode>::deserialize(deserializer)?;
        Ok(match node.value {
            GateNode::Command(command) => GateConfig {
                run: Template::read(Spanned::new(command, node.span)),
                shell: None,
                workdir: None,
                env: IndexMap::new(),
            },
            GateNode::Map(map) => GateConfig {
                run: map.run,
                shell: map.shell,
                workdir: map.workdir,
                env: map.env,
            },
        })
    }
}

impl JsonSchema for GateConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Gate".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let command = generator.subschema_for::<Template>();
        let map = generator.subschema_for::<GateMap>();
        schemars::json_schema!({
            "description": "A command that must exit 0: a command string, or a map with `run`.",
            "oneOf": [command, map]
        })
    }
}
