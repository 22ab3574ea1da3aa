//! The JSON Schema of workflow files, generated from the Rust types (`agent-orch schema`).
//!
//! Editors use it to complete and check workflow files (VS Code's YAML extension:
//! `# yaml-language-server: $schema=...`). Section types come from their `JsonSchema` derives;
//! the step is assembled here because its shape (common keys plus exactly one kind key) is
//! decoded by hand: one `oneOf` branch per kind, plus the `template:` include.

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::duration::DurationSpec;
use super::model::{AgentConfig, Environment, NotifyTarget, Safety, SecretsConfig, StepKind};

/// The JSON Schema (draft 2020-12) of a workflow file.
pub fn schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let kinds = kind_schemas(&mut generator);
    let common = json!({
        "id": {"type": "string", "description": "Unique among all steps; other steps refer to it as `steps.<id>`."},
        "name": {"type": "string", "description": "Shown in reports instead of the id."},
        "required": {"type": "boolean", "default": true, "description": "A failed step with `required: false` is a warning."},
        "if": {"type": "string", "description": "A minijinja expression; the step is skipped when it is false."},
        "timeout": generator.subschema_for::<DurationSpec>().to_value(),
        "retries": {"type": "integer", "minimum": 0, "description": "Extra attempts when the step fails."},
    });
    let mut branches: Vec<Value> = kinds
        .into_iter()
        .map(|(key, kind)| {
            let mut properties = common.as_object().cloned().unwrap_or_default();
            properties.insert(key.to_owned(), kind);
            json!({
                "type": "object",
                "title": key,
                "properties": properties,
                "required": ["id", key],
                "additionalProperties": false,
            })
        })
        .collect();
    branches.push(json!({
        "type": "object",
        "title": "template",
        "description": "Steps from a template file, with values for its parameters.",
        "properties": {
            "template": {"type": "string", "description": "A template file: relative to this file, the project root, or `<root>/templates/`."},
            "parameters": {"type": "object"},
        },
        "required": ["template"],
        "additionalProperties": false,
    }));
    let step_list = json!({"type": "array", "items": {"$ref": "#/$defs/Step"}});
    // Free-form values, except the one the engine reads: a real boolean, as `validate` demands.
    let mut environment = generator.subschema_for::<Environment>().to_value();
    if let Some(object) = environment.as_object_mut() {
        object.insert(
            "properties".into(),
            json!({
                "require_approval": {"type": "boolean", "description": "Ask a human before deploying here: on a terminal, `--approve-deploy`, or a deployment job in a pipeline."},
                "aks": {
                    "type": "object",
                    "description": "The AKS cluster deploy steps reach with the run's Azure sign-in (unless a step names a kubeconfig or context).",
                    "properties": {
                        "subscription": {"type": "string", "description": "Default: the service connection's subscription."},
                        "resource_group": {"type": "string"},
                        "cluster": {"type": "string"},
                        "admin": {"type": "boolean", "description": "Use the cluster's local admin account."},
                    },
                    "required": ["resource_group", "cluster"],
                    "additionalProperties": false,
                },
            }),
        );
    }
    let secrets = generator.subschema_for::<SecretsConfig>().to_value();
    let agent = generator.subschema_for::<AgentConfig>().to_value();
    let safety = generator.subschema_for::<Safety>().to_value();
    let notify_target = generator.subschema_for::<NotifyTarget>().to_value();
    let mut definitions: Map<String, Value> = generator.take_definitions(true);
    definitions.insert("Step".into(), json!({"oneOf": branches}));
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/agent-orch/agent-orch/workflow.schema.json",
        "title": "agent-orch workflow",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "environments": {"type": "object", "additionalProperties": environment, "description": "Picked with `--env`; exposed to templates as `env`."},
            "vars": {"type": "object", "description": "Exposed to templates as `vars`; `--var NAME=VALUE` overrides."},
            "secrets": secrets,
            "agents": {"type": "object", "additionalProperties": agent},
            "safety": safety,
            "steps": step_list,
            "repair": step_list,
            "on_give_up": step_list,
            "notify": {"type": "array", "items": notify_target, "description": "Who hears how the run ended: Teams, Slack or any JSON webhook."},
            "on_success": step_list,
            "outputs": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "description": "Rendered after a successful run into `outputs.json`; in a pipeline, also output variables.",
            },
        },
        "required": ["name"],
        "additionalProperties": false,
        "$defs": definitions,
    })
}

/// Expands the step-kind table into `kind_schemas`.
macro_rules! step_kind_schemas {
    ($($(#[$doc:meta])* $key:ident => $Variant:ident($Config:ty),)*) => {
        /// One schema per step kind, keyed like [`StepKind::KEYS`].
        fn kind_schemas(
            generator: &mut SchemaGenerator,
        ) -> [(&'static str, Value); StepKind::KEYS.len()] {
            [$((stringify!($key), generator.subschema_for::<$Config>().to_value()),)*]
        }
    };
}
super::step_kind::step_kinds!(step_kind_schemas);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_kind_has_a_schema_branch() {
        let mut generator = SchemaSettings::draft2020_12().into_generator();
        let keys: Vec<&str> = kind_schemas(&mut generator)
            .iter()
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(keys, StepKind::KEYS);
    }
}
