//! A rendered manifest must keep the structure of its template: the same documents, the same
//! keys, the same list lengths. A template value (a `--var`, a step's output) that holds
//! `"\n---\nkind: ConfigMap"` or `"x\n  extra: key"` would otherwise add objects or fields to
//! what is deployed.
//!
//! The template's own structure is its rendering with every `{{ ... }}` output replaced by a
//! plain placeholder word: control flow (`{% if %}`, `{% for %}`) still runs on the real
//! values, so only what the values themselves bring in can differ. A mapping key that holds a
//! placeholder may take any name. A value meant to be structured text belongs in a block
//! scalar (`|`), where it stays one string; `| yaml_quote` makes any value one scalar.

use serde_json::Value;

use super::manifest::split_documents;
use crate::workflow::template::{Renderer, Template, interpolations};

/// A placeholder: a plain YAML word no real manifest contains.
fn placeholder(index: usize) -> String {
    format!("agentorchvalue{index}x")
}

const PLACEHOLDER_PREFIX: &str = "agentorchvalue";

/// Why a rendering was refused: which value, and what it added.
#[derive(Debug, thiserror::Error)]
#[error("{value} {change}; write it as `{{{{ ... | yaml_quote }}}}` to keep it one value")]
pub struct ShapeError {
    /// The expression (`{{ vars.note }}` at line 7), or where its output landed.
    pub value: String,
    /// What the value added: `adds a document (the template has 1, the rendering 2)`.
    pub change: String,
}

/// Checks that `rendered`, the rendering of `template`, has the template's structure. A
/// template that does not parse as YAML without its values is not checked.
pub fn check(renderer: &Renderer, template: &Template, rendered: &str) -> Result<(), ShapeError> {
    let Ok((shape, outputs)) = renderer.render_replacing(template, |i| Some(placeholder(i))) else {
        return Ok(());
    };
    let Some(shape) = documents(&shape) else {
        return Ok(());
    };
    let Some(change) = difference(&shape, rendered) else {
        return Ok(());
    };
    // Which value: render with one real value at a time.
    let culprit = (0..outputs).find(|&real| {
        renderer
            .render_replacing(template, move |i| (i != real).then(|| placeholder(i)))
            .map_or(true, |(text, _)| difference(&shape, &text).is_some())
    });
    Err(ShapeError {
        value: describe(template, culprit, outputs),
        change,
    })
}

/// Names the culprit: its expression when the outputs up to it map one to one onto the
/// template's `{{ ... }}` (no loop or condition before it), else its place among the outputs.
fn describe(template: &Template, culprit: Option<usize>, outputs: usize) -> String {
    let Some(index) = culprit else {
        return "a template value".to_owned();
    };
    let source = template.source();
    let expressions = interpolations(source);
    let first_tag = source.find("{%").unwrap_or(source.len());
    let before_tags = expressions
        .iter()
        .filter(|(offset, _)| *offset < first_tag)
        .count();
    match expressions.get(index) {
        Some((offset, expression)) if expressions.len() == outputs || index < before_tags => {
            let line = source[..*offset].matches('\n').count() + 1;
            format!("the value of `{expression}` (line {line})")
        }
        _ => format!("template value number {}", index + 1),
    }
}

/// The documents of a manifest text, blank ones skipped; `None` if one is not YAML.
fn documents(text: &str) -> Option<Vec<Value>> {
    let mut documents = Vec::new();
    for (_, document) in split_documents(text) {
        let value: Value = serde_saphyr::from_str(&document).ok()?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Some(documents)
}

/// The first structural difference between the template's shape and the rendered text.
fn difference(shape: &[Value], rendered: &str) -> Option<String> {
    let Some(actual) = documents(rendered) else {
        return Some("makes the manifest invalid YAML".to_owned());
    };
    if shape.len() != actual.len() {
        let verb = if actual.len() > shape.len() {
            "adds"
        } else {
            "removes"
        };
        return Some(format!(
            "{verb} a document (the template has {}, the rendering {})",
            shape.len(),
            actual.len()
        ));
    }
    shape
        .iter()
        .zip(&actual)
        .enumerate()
        .find_map(|(index, (shape, actual))| {
            node_difference(&format!("document {}", index + 1), shape, actual)
        })
}

fn node_difference(path: &str, shape: &Value, actual: &Value) -> Option<String> {
    match (shape, actual) {
        (Value::Object(shape), Value::Object(actual)) => {
            // Keys holding a value may take any name; the others must all be there.
            let (fixed, named_by_values): (Vec<_>, Vec<_>) = shape
                .iter()
                .partition(|(key, _)| !key.contains(PLACEHOLDER_PREFIX));
            if let Some((key, _)) = fixed.iter().find(|(key, _)| !actual.contains_key(*key)) {
                return Some(format!("removes the key `{key}` under {path}"));
            }
            let extra: Vec<&String> = actual
                .keys()
                .filter(|key| !fixed.iter().any(|(fixed, _)| fixed == key))
                .collect();
            if extra.len() > named_by_values.len() {
                return Some(match (extra.as_slice(), named_by_values.is_empty()) {
                    ([key, ..], true) => format!("adds the key `{key}` under {path}"),
                    _ => format!("adds a key under {path}"),
                });
            }
            if extra.len() < named_by_values.len() {
                return Some(format!("removes a key under {path}"));
            }
            fixed.iter().find_map(|(key, value)| {
                let actual = actual.get(*key)?;
                node_difference(&format!("{path} `{key}`"), value, actual)
            })
        }
        (Value::Array(shape), Value::Array(actual)) => {
            if shape.len() != actual.len() {
                return Some(format!(
                    "changes the length of the list at {path} ({} in the template, {} rendered)",
                    shape.len(),
                    actual.len()
                ));
            }
            shape
                .iter()
                .zip(actual)
                .enumerate()
                .find_map(|(i, (shape, actual))| {
                    node_difference(&format!("{path}[{i}]"), shape, actual)
                })
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => Some(
            format!("turns {path} from {} into {}", kind(shape), kind(actual)),
        ),
        // Scalars may take any value: that is what values are for.
        _ => None,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "a mapping",
        Value::Array(_) => "a list",
        _ => "a single value",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::workflow::span::Spanned;

    const TEMPLATE: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  labels: {team: {{ vars.team }}}
data:
  {{ vars.key }}: fixed
  note: {{ vars.note }}
";

    fn check_template(template: &str, vars: serde_json::Value) -> Result<(), ShapeError> {
        let renderer = Renderer::new(json!({ "vars": vars }));
        let template = Template(Spanned::detached(template.to_owned()));
        let rendered = renderer.render(&template).unwrap();
        check(&renderer, &template, &rendered)
    }

    fn check_with(vars: serde_json::Value) -> Result<(), ShapeError> {
        check_template(TEMPLATE, vars)
    }

    fn vars(note: &str) -> serde_json::Value {
        json!({"team": "web", "note": note, "key": "name"})
    }

    #[test]
    fn plain_values_keep_the_structure() {
        check_with(vars("a plain note")).unwrap();
        check_with(vars("42")).unwrap();
        check_with(vars("x\n  indented: more")).unwrap_err();
    }

    #[test]
    fn a_value_that_adds_a_document_is_named() {
        let err = check_with(vars(
            "x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: evil}",
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the value of `{{ vars.note }}` (line 8) adds a document (the template has 1, the \
             rendering 2); write it as `{{ ... | yaml_quote }}` to keep it one value"
        );
    }

    #[test]
    fn a_value_that_adds_a_key_or_an_item_is_refused() {
        let err = check_with(vars("x\n  injected: yes")).unwrap_err();
        assert_eq!(err.change, "adds a key under document 1 `data`");
        let mut with_item = vars("x");
        with_item["team"] = json!("web, extra: 1");
        let err = check_with(with_item).unwrap_err();
        assert_eq!(err.value, "the value of `{{ vars.team }}` (line 5)");
        assert_eq!(
            err.change,
            "adds the key `extra` under document 1 `metadata` `labels`"
        );
    }

    #[test]
    fn a_value_that_breaks_the_yaml_is_refused() {
        let err = check_with(vars("x\n  - y\n bad")).unwrap_err();
        assert_eq!(err.change, "makes the manifest invalid YAML");
        assert!(err.value.contains("vars.note"), "{err}");
    }

    #[test]
    fn yaml_quote_keeps_any_value_one_scalar() {
        let template = TEMPLATE.replace("{{ vars.note }}", "{{ vars.note | yaml_quote }}");
        check_template(&template, vars("x\n---\nkind: ConfigMap\n  a: b")).unwrap();
    }

    #[test]
    fn loops_over_values_are_structure_of_the_template() {
        let template =
            "kind: List\nitems:\n{% for item in vars.items %}  - {{ item }}\n{% endfor %}";
        check_template(template, json!({"items": ["a", "b", "c"]})).unwrap();
        let err = check_template(template, json!({"items": ["a", "b\n  - c"]})).unwrap_err();
        assert_eq!(err.value, "template value number 2");
        assert!(err.change.contains("length of the list"), "{err}");
    }
}
