//! `gate`: run a command (lint, test, build) and pass when it exits 0.

use std::fmt;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::{self, IntoDeserializer};
use serde::{Deserialize, Deserializer};

use crate::workflow::span::Spanned;
use crate::workflow::template::Template;

/// `gate: "npm test"` or `gate: {run, workdir, env}`.
#[derive(Clone, Debug)]
pub struct GateConfig {
    pub run: Template,
    pub workdir: Option<Template>,
    pub env: IndexMap<String, Template>,
}

/// The long form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateFull {
    run: Template,
    #[serde(default)]
    workdir: Option<Template>,
    #[serde(default)]
    env: IndexMap<String, Template>,
}

impl<'de> Deserialize<'de> for GateConfig {
    // Not `#[serde(untagged)]`: that buffers the value, losing every span and turning any
    // mistake into "data did not match any variant". Here the map form is decoded in place
    // (unknown keys and wrong types point at their node) and the short form's command takes
    // the span of the whole value, which is the command string.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FormVisitor;

        impl<'de> de::Visitor<'de> for FormVisitor {
            type Value = GateConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command or a mapping with `run`")
            }

            fn visit_str<E: de::Error>(self, command: &str) -> Result<GateConfig, E> {
                Ok(GateConfig {
                    run: Template::deserialize(command.into_deserializer())?,
                    workdir: None,
                    env: IndexMap::new(),
                })
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<GateConfig, A::Error> {
                let full = GateFull::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(GateConfig {
                    run: full.run,
                    workdir: full.workdir,
                    env: full.env,
                })
            }
        }

        struct Form(GateConfig);

        impl<'de> Deserialize<'de> for Form {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(FormVisitor).map(Form)
            }
        }

        let form = Spanned::<Form>::deserialize(deserializer)?;
        let mut config = form.value.0;
        if config.run.0.span.file.is_none() {
            config.run.0.span = form.span;
        }
        Ok(config)
    }
}

// The schema of the two forms; only for `JsonSchema`, decoding is hand-written above.
#[derive(JsonSchema)]
#[serde(untagged)]
#[expect(
    dead_code,
    reason = "describes the accepted forms for the JSON Schema only"
)]
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

impl JsonSchema for GateConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GateConfig".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        GateSyntax::json_schema(generator)
    }
}
