//! Environment values are templates: `url: "http://127.0.0.1:{{ vars.port }}"`.
//!
//! They may read `vars` (after `--var`), `ado`, and the environment's other values
//! (`env.<key>`, `env.name`). They are rendered once, when a run starts, each after the values
//! it reads; values that read each other in a cycle are a load-time error (`validate`), and
//! never rendered.

use indexmap::IndexMap;

use super::dependency_order::order;
use serde_json::{Map, Value};

use super::model::Environment;
use super::template::{Renderer, has_template_syntax};

/// The roots an environment value may read: the others do not exist yet when it renders.
pub(crate) const ENVIRONMENT_ROOTS: [&str; 3] = ["vars", "ado", "env"];

/// An environment that could not be rendered: nothing ran.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("failed to render `env.{key}` of environment `{environment}`: {reason}")]
    Render {
        environment: String,
        key: String,
        reason: String,
    },
    #[error(
        "the values of environment `{environment}` refer to each other in a cycle: {}",
        chain(.keys)
    )]
    Cycle {
        environment: String,
        keys: Vec<String>,
    },
}

/// A cycle as people read it: `` `url` → `base` → `url` ``.
pub(crate) fn chain(keys: &[String]) -> String {
    keys.iter()
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The values of `environment` named `name`, rendered: what templates see as `env`, with
/// `env.name` first (a value called `name` overrides it, as it always has).
pub fn render(
    name: &str,
    environment: &Environment,
    vars: &IndexMap<String, Value>,
    ado: &Map<String, Value>,
) -> Result<Map<String, Value>, EnvironmentError> {
    let order = order(&dependencies(environment)).map_err(|keys| EnvironmentError::Cycle {
        environment: name.to_owned(),
        keys,
    })?;
    let mut rendered = Map::new();
    rendered.insert("name".into(), Value::String(name.to_owned()));
    for key in order {
        let Some(value) = environment.0.get(key) else {
            continue;
        };
        let renderer = Renderer::new(serde_json::json!({
            "vars": vars,
            "ado": ado,
            "env": rendered,
        }));
        let value =
            renderer
                .render_strings_of(value)
                .map_err(|reason| EnvironmentError::Render {
                    environment: name.to_owned(),
                    key: key.to_owned(),
                    reason,
                })?;
        rendered.insert(key.to_owned(), value);
    }
    // In written order, as `plan` and the file show them.
    let mut env = Map::new();
    env.insert("name".into(), Value::String(name.to_owned()));
    for key in environment.0.keys() {
        if let Some(value) = rendered.remove(key) {
            env.insert(key.clone(), value);
        }
    }
    Ok(env)
}

/// For each value of `environment`, the other values it reads (`env.base` reads `base`; the
/// whole `env` reads every other value).
pub(crate) fn dependencies(environment: &Environment) -> IndexMap<&str, Vec<&str>> {
    environment
        .0
        .iter()
        .map(|(key, value)| {
            let mut reads = Vec::new();
            for variable in variables_in(value) {
                let mut parts = variable.split('.');
                if parts.next() != Some("env") {
                    continue;
                }
                match parts.next() {
                    Some(field) => {
                        reads.extend(environment.0.get_key_value(field).map(|(k, _)| k.as_str()))
                    }
                    None => reads.extend(
                        environment
                            .0
                            .keys()
                            .map(String::as_str)
                            .filter(|k| k != key),
                    ),
                }
            }
            reads.sort_unstable();
            reads.dedup();
            (key.as_str(), reads)
        })
        .collect()
}

/// The variables every template string of `value` reads; a string that does not parse reads
/// nothing here (the loader reports it).
fn variables_in(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) if has_template_syntax(text) => minijinja::Environment::new()
            .template_from_str(text)
            .map(|template| template.undeclared_variables(true).into_iter().collect())
            .unwrap_or_default(),
        Value::Array(items) => items.iter().flat_map(variables_in).collect(),
        Value::Object(fields) => fields.values().flat_map(variables_in).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn environment(values: Value) -> Environment {
        serde_json::from_value(values).expect("an environment")
    }

    #[test]
    fn values_render_after_the_values_they_read() {
        let local = environment(json!({
            "url": "{{ env.base }}/api",
            "base": "http://{{ env.host }}:{{ vars.port }}",
            "host": "127.0.0.1",
            "build": "{{ ado.build_id | default('local') }}",
            "replicas": 2,
            "labels": {"app": "shop-{{ env.name }}"},
        }));
        let vars = IndexMap::from([("port".to_owned(), json!("8080"))]);
        let env = render("local", &local, &vars, &Map::new()).expect("renders");
        assert_eq!(
            Value::Object(env),
            json!({
                "name": "local",
                "url": "http://127.0.0.1:8080/api",
                "base": "http://127.0.0.1:8080",
                "host": "127.0.0.1",
                "build": "local",
                "replicas": 2,
                "labels": {"app": "shop-local"},
            })
        );
    }

    #[test]
    fn a_cycle_is_named_and_nothing_renders() {
        let looping = environment(json!({
            "a": "{{ env.b }}",
            "b": "{{ env.c }}",
            "c": "{{ env.a }}",
            "d": "fine",
        }));
        let err = render("prod", &looping, &IndexMap::new(), &Map::new()).expect_err("a cycle");
        assert_eq!(
            err.to_string(),
            "the values of environment `prod` refer to each other in a cycle: `a` → `b` → `c` → `a`"
        );
        let itself = environment(json!({"a": "{{ env.a }}x"}));
        assert!(matches!(
            render("x", &itself, &IndexMap::new(), &Map::new()),
            Err(EnvironmentError::Cycle { keys, .. }) if keys == ["a", "a"]
        ));
    }

    #[test]
    fn undefined_values_are_errors_naming_the_value() {
        let broken = environment(json!({"url": "https://{{ ado.build_id }}.preview.test"}));
        let err = render("preview", &broken, &IndexMap::new(), &Map::new()).expect_err("strict");
        let message = err.to_string();
        assert!(
            message.starts_with(
                "failed to render `env.url` of environment `preview`: undefined value"
            ),
            "{message}"
        );
    }
}
