//! Durations as people write them in workflow files: `10s`, `5m`, `1h30m`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationSpec(pub Duration);

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map(DurationSpec)
            .map_err(|err| {
                // humantime appends its whole unit list; the examples below say it shorter.
                let err = err.to_string();
                let reason = err.split(", supported units").next().unwrap_or(&err);
                serde::de::Error::custom(format!(
                    "invalid duration `{text}` ({reason}): write it like `10s`, `5m` or `1h30m`"
                ))
            })
    }
}

impl schemars::JsonSchema for DurationSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^\\s*([0-9]+\\s*(ns|us|ms|s|sec|m|min|h|hr|d)\\s*)+$",
            "description": "A duration such as `10s`, `5m` or `1h30m`."
        })
    }
}
