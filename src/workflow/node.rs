//! The YAML node tree: what a workflow or template file says, before it means anything.
//!
//! Files are parsed with serde-saphyr into [`Node`]s that keep the span of every value and
//! every mapping key. Template expansion works on this tree, and the typed model is decoded
//! from it (`super::decode`), so every later error can point at the node it is about.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::MessageFormatter;

use super::diagnostic::{Diagnostic, DiagnosticKind};
use super::span::{SourceFile, Span};

/// A YAML value with the span it was written at.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// Integers above `i64::MAX`.
    UInt(u64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key; always text in workflow files.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) span: Span,
}

impl Node {
    pub(crate) fn new(value: Value, span: Span) -> Self {
        Self { value, span }
    }

    /// What kind of value this is, in the words a diagnostic uses ("a mapping", "a string").
    pub(crate) fn describe(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub(crate) fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The entry of a mapping node with this key.
    pub(crate) fn get(&self, name: &str) -> Option<(&Key, &Node)> {
        self.as_map()?
            .iter()
            .find(|(key, _)| key.name == name)
            .map(|(key, value)| (key, value))
    }

    /// A plain JSON view of the value (spans dropped), for free-form data like `vars`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::UInt(u) => serde_json::Value::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.name.clone(), value.to_json()))
                    .collect(),
            ),
        }
    }
}

impl serde::Serialize for Node {
    // Mappings keep their written order, so a plan reads like the file it came from.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match &self.value {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::UInt(u) => serializer.serialize_u64(*u),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::String(text) => serializer.serialize_str(text),
            Value::Seq(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(&key.name, value)?;
                }
                map.end()
            }
        }
    }
}

/// Parses one YAML file into a node tree.
///
/// Only YAML 1.2 booleans (`true`/`false`) are booleans: `yes`, `no`, `on` and `off` stay
/// strings, so `country: no` means Norway. Duplicate keys are errors.
/// How deeply a workflow file's values may nest.
const MAX_DEPTH: usize = 32;

pub(crate) fn parse(file: &Arc<SourceFile>) -> Result<Node, Box<Diagnostic>> {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    // Every later stage (conversion, decoding, template checks) recurses per level, on threads
    // with 2 MiB stacks (tokio's, a hub worker's); the parser's default of 64 levels overflowed
    // such a stack in a debug build (found by the fuzzer). No workflow needs more than a few.
    let mut budget = options.budget.take().unwrap_or_default();
    budget.max_depth = MAX_DEPTH;
    options.budget = Some(budget);
    if file.text.trim().is_empty() {
        return Ok(Node::new(Value::Null, span_at(file, 1, 1, 0)));
    }
    let raw: serde_saphyr::Spanned<Raw> = serde_saphyr::from_str_with_options(&file.text, options)
        .map_err(|err| {
            let err = err.without_snippet();
            let message = serde_saphyr::UserMessageFormatter.format_message(err);
            let span = match err.location() {
                Some(location) => span_from(file, &location),
                None => span_at(file, 1, 1, 0),
            };
            Box::new(Diagnostic::new(
                DiagnosticKind::Syntax,
                format!("invalid YAML: {}", lowercase_first(&message)),
                span,
            ))
        })?;
    Ok(convert(file, raw))
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if !chars.clone().next().is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_owned(),
    }
}

fn span_at(file: &Arc<SourceFile>, line: usize, column: usize, len: usize) -> Span {
    Span {
        file: Some(Arc::clone(file)),
        line,
        column,
        len,
    }
}

fn span_from(file: &Arc<SourceFile>, location: &serde_saphyr::Location) -> Span {
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    span_at(
        file,
        to_usize(location.line()).max(1),
        to_usize(location.column()).max(1),
        to_usize(location.span().len()),
    )
}

fn convert(file: &Arc<SourceFile>, raw: serde_saphyr::Spanned<Raw>) -> Node {
    let span = span_from(file, &raw.referenced);
    let value = match raw.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::UInt(u) => Value::UInt(u),
        Raw::Float(f) => Value::Float(f),
        Raw::String(s) => Value::String(s),
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|item| convert(file, item)).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let key = Key {
                        span: span_from(file, &key.referenced),
                        name: key.value,
                    };
                    (key, convert(file, value))
                })
                .collect(),
        ),
    };
    Node::new(value, span)
}

/// The shape serde-saphyr fills in; spans are attached by wrapping each level in its `Spanned`.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    String(String),
    Seq(Vec<serde_saphyr::Spanned<Raw>>),
    Map(Vec<(serde_saphyr::Spanned<String>, serde_saphyr::Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        Raw::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::UInt(v), Raw::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        i64::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Node, Box<Diagnostic>> {
        parse(&SourceFile::new("test.yaml", text))
    }

    fn position(span: &Span) -> (usize, usize, usize) {
        (span.line, span.column, span.len)
    }

    #[test]
    fn keys_and_values_keep_their_positions() {
        let node = parse_text("name: demo\nsteps:\n  - id: build\n    gate: make\n")
            .expect("test fixture");
        let (name_key, name) = node.get("name").expect("test fixture");
        assert_eq!(position(&name_key.span), (1, 1, 4));
        assert_eq!(position(&name.span), (1, 7, 4));
        let (_, steps) = node.get("steps").expect("test fixture");
        let Value::Seq(items) = &steps.value else {
            panic!("steps is {steps:?}")
        };
        let (gate_key, gate) = items[0].get("gate").expect("test fixture");
        assert_eq!(position(&gate_key.span), (4, 5, 4));
        assert_eq!(gate.as_str(), Some("make"));
        assert_eq!(position(&gate.span), (4, 11, 4));
        assert_eq!((items[0].span.line, items[0].span.column), (3, 5));
    }

    #[test]
    fn yes_and_no_are_strings_and_true_is_a_boolean() {
        let node = parse_text("a: yes\nb: off\nc: true\nd: 3\ne: 1.5\nf:\n").expect("test fixture");
        let values: Vec<_> = node
            .as_map()
            .expect("test fixture")
            .iter()
            .map(|(_, v)| v.value.clone())
            .collect();
        assert_eq!(
            values,
            vec![
                Value::String("yes".into()),
                Value::String("off".into()),
                Value::Bool(true),
                Value::Int(3),
                Value::Float(1.5),
                Value::Null,
            ]
        );
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        let err = parse_text("steps:\n  - id: [unclosed\n").expect_err("should fail");
        assert_eq!(err.kind, DiagnosticKind::Syntax);
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
        assert_eq!((err.span.line, err.span.column), (2, 9), "{err:?}");
    }

    #[test]
    fn duplicate_keys_are_errors_at_the_second_key() {
        let err = parse_text("name: a\nname: b\n").expect_err("should fail");
        assert!(err.message.contains("duplicate"), "{}", err.message);
        assert_eq!((err.span.line, err.span.column), (2, 1));
    }

    #[test]
    fn odd_documents_are_values_or_diagnostics_never_panics() {
        let numeric_key = parse_text("1: one\ntrue: yes\n").expect("scalar keys are text");
        let keys: Vec<&str> = numeric_key
            .as_map()
            .expect("a mapping")
            .iter()
            .map(|(k, _)| k.name.as_str())
            .collect();
        assert_eq!(keys, ["1", "true"]);
        assert_eq!(parse_text("").expect("empty").value, Value::Null);
        assert_eq!(
            parse_text("# only a comment\n").expect("comment").value,
            Value::Null
        );
        let two_documents = parse_text("a: 1\n---\nb: 2\n").expect_err("one document only");
        assert_eq!(two_documents.kind, DiagnosticKind::Syntax);
        let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(
            parse_text(&deep).expect_err("too deep").kind,
            DiagnosticKind::Syntax
        );
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_a_syntax_error_not_a_stack_overflow() {
        let nested = |depth: usize| format!("steps: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_text(&nested(MAX_DEPTH - 2)).is_ok());
        let error = parse_text(&nested(MAX_DEPTH + 8)).unwrap_err();
        assert!(
            error.message.contains("too large or too complex"),
            "{}",
            error.message
        );
    }
}
