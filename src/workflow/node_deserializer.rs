//! A serde `Deserializer` over the node tree, whose errors point at the node they are about.
//!
//! Like `serde_json::Value`'s deserializer, but every error carries the span of the innermost
//! node being deserialized: an unknown key points at the key, a wrong type at the value, a
//! missing key at the mapping. [`crate::workflow::span::Spanned`] values get their real spans
//! through the hand-off described in `span.rs`.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use super::diagnostic::{Diagnostic, DiagnosticKind, all_of, did_you_mean, one_of};
use super::node::{Key, Node, Value};
use super::span::{SPAN_HANDOFF, SPANNED_MAGIC, Span};

/// Decodes a typed value from a node; the error is a ready-to-show diagnostic.
pub(crate) fn from_node<'de, T: de::Deserialize<'de>>(
    node: &'de Node,
) -> Result<T, Box<Diagnostic>> {
    T::deserialize(NodeDeserializer { node })
        .map_err(|err| Box::new(err.into_diagnostic(&node.span)))
}

/// A decode error: a message and, once known, the span of the node it is about.
#[derive(Debug)]
pub(crate) struct DecodeError {
    kind: DiagnosticKind,
    message: String,
    label: Option<String>,
    help: Option<String>,
    span: Option<Span>,
}

impl DecodeError {
    fn new(kind: DiagnosticKind, message: String) -> Self {
        Self {
            kind,
            message,
            label: None,
            help: None,
            span: None,
        }
    }

    /// Sets the span unless an inner node already did: the innermost node wins.
    fn at(mut self, span: &Span) -> Self {
        if self.span.is_none() {
            self.span = Some(span.clone());
        }
        self
    }

    pub(crate) fn into_diagnostic(self, fallback: &Span) -> Diagnostic {
        let mut diagnostic = Diagnostic::new(
            self.kind,
            self.message,
            self.span.unwrap_or_else(|| fallback.clone()),
        );
        diagnostic.label = self.label;
        diagnostic.help = self.help;
        diagnostic
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(DiagnosticKind::InvalidValue, msg.to_string())
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::new(
            DiagnosticKind::InvalidValue,
            format!(
                "expected {}, found {}",
                plain_expected(&expected.to_string()),
                plain_unexpected(&unexpected)
            ),
        )
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::new(
            DiagnosticKind::InvalidValue,
            format!(
                "invalid value {}: expected {}",
                quoted_value(&unexpected),
                plain_expected(&expected.to_string())
            ),
        )
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut err = Self::new(DiagnosticKind::UnknownKey, format!("unknown key `{field}`"));
        err.label = did_you_mean(field, expected.iter().copied());
        err.help = Some(format!(
            "valid keys here: {}",
            all_of(expected.iter().copied())
        ));
        err
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut err = Self::new(
            DiagnosticKind::InvalidValue,
            format!("unknown value `{variant}`"),
        );
        err.label = did_you_mean(variant, expected.iter().copied());
        err.help = Some(format!("expected {}", one_of(expected.iter().copied())));
        err
    }

    fn missing_field(field: &'static str) -> Self {
        Self::new(DiagnosticKind::MissingKey, format!("missing key `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::new(
            DiagnosticKind::InvalidValue,
            format!("key `{field}` given twice"),
        )
    }
}

/// Serde's type names ("u32", "struct HttpCheck") in the words of a YAML user.
fn plain_expected(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list".into(),
        "a map" | "map" => "a mapping".into(),
        other if other.starts_with("struct ") => "a mapping".into(),
        other => other.into(),
    }
}

/// The value itself where it is a scalar (`` `-1` ``), else what it is.
fn quoted_value(unexpected: &de::Unexpected<'_>) -> String {
    match unexpected {
        de::Unexpected::Bool(b) => format!("`{b}`"),
        de::Unexpected::Unsigned(n) => format!("`{n}`"),
        de::Unexpected::Signed(n) => format!("`{n}`"),
        de::Unexpected::Float(n) => format!("`{n}`"),
        de::Unexpected::Str(s) => format!("`{s}`"),
        other => plain_unexpected(other),
    }
}

fn plain_unexpected(unexpected: &de::Unexpected<'_>) -> String {
    match unexpected {
        de::Unexpected::Bool(b) => format!("a boolean `{b}`"),
        de::Unexpected::Unsigned(n) => format!("an integer `{n}`"),
        de::Unexpected::Signed(n) => format!("an integer `{n}`"),
        de::Unexpected::Float(n) => format!("a number `{n}`"),
        de::Unexpected::Str(s) => format!("a string `{s}`"),
        de::Unexpected::Unit => "nothing (null)".into(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Map => "a mapping".into(),
        other => other.to_string(),
    }
}

#[derive(Clone, Copy)]
pub(crate) struct NodeDeserializer<'a> {
    node: &'a Node,
}

impl<'a> NodeDeserializer<'a> {
    fn invalid_type(&self, expected: &str) -> DecodeError {
        let mut err = DecodeError::new(
            DiagnosticKind::InvalidValue,
            format!("expected {expected}, found {}", self.node.describe()),
        )
        .at(&self.node.span);
        if expected == "a string"
            && matches!(
                self.node.value,
                Value::Bool(_) | Value::Int(_) | Value::Float(_)
            )
        {
            err.help = Some("quote the value to make it a string".into());
        }
        err
    }

    fn visit<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError>
    where
        'a: 'de,
    {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDeserializer {
                items: items.iter(),
            }),
            Value::Map(entries) => visitor.visit_map(MapDeserializer {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|err| err.at(&self.node.span))
    }
}

macro_rules! deserialize_scalar {
    ($($method:ident: $expected:literal => $($variant:ident)|+;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
                match &self.node.value {
                    $(Value::$variant(..))|+ => self.visit(visitor),
                    _ => Err(self.invalid_type($expected)),
                }
            }
        )*
    };
}

impl<'de, 'a: 'de> Deserializer<'de> for NodeDeserializer<'a> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.visit(visitor)
    }

    deserialize_scalar! {
        deserialize_bool: "a boolean" => Bool;
        deserialize_i8: "an integer" => Int | UInt;
        deserialize_i16: "an integer" => Int | UInt;
        deserialize_i32: "an integer" => Int | UInt;
        deserialize_i64: "an integer" => Int | UInt;
        deserialize_i128: "an integer" => Int | UInt;
        deserialize_u8: "a non-negative integer" => Int | UInt;
        deserialize_u16: "a non-negative integer" => Int | UInt;
        deserialize_u32: "a non-negative integer" => Int | UInt;
        deserialize_u64: "a non-negative integer" => Int | UInt;
        deserialize_u128: "a non-negative integer" => Int | UInt;
        deserialize_f32: "a number" => Int | UInt | Float;
        deserialize_f64: "a number" => Int | UInt | Float;
        deserialize_char: "a string" => String;
        deserialize_str: "a string" => String;
        deserialize_string: "a string" => String;
        deserialize_bytes: "a string" => String;
        deserialize_byte_buf: "a string" => String;
        deserialize_identifier: "a string" => String;
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|err| err.at(&self.node.span))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.node.value {
            Value::Null => self.visit(visitor),
            _ => Err(self.invalid_type("nothing (null)")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if name == SPANNED_MAGIC {
            // The visitor takes the span back out first thing; see `span.rs`.
            SPAN_HANDOFF.with(|slot| *slot.borrow_mut() = Some(self.node.span.clone()));
        }
        visitor
            .visit_newtype_struct(self)
            .map_err(|err| err.at(&self.node.span))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match &self.node.value {
            Value::Seq(_) => self.visit(visitor),
            // `never_delete:` with nothing after it means an empty list.
            Value::Null => visitor
                .visit_seq(SeqDeserializer { items: [].iter() })
                .map_err(|err| err.at(&self.node.span)),
            _ => Err(self.invalid_type("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match &self.node.value {
            Value::Map(_) => self.visit(visitor),
            // `budget:` with nothing after it means an empty mapping.
            Value::Null => visitor
                .visit_map(MapDeserializer {
                    entries: [].iter(),
                    value: None,
                })
                .map_err(|err| err.at(&self.node.span)),
            _ => Err(self.invalid_type("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match &self.node.value {
            Value::String(_) => visitor.visit_enum(EnumDeserializer {
                variant: self.node,
                variant_name: None,
                value: None,
            }),
            Value::Map(entries) => match entries.as_slice() {
                [(key, value)] => visitor.visit_enum(EnumDeserializer {
                    variant: self.node,
                    variant_name: Some(key),
                    value: Some(value),
                }),
                _ => Err(DecodeError::new(
                    DiagnosticKind::InvalidValue,
                    "expected a mapping with exactly one key".into(),
                )),
            },
            _ => Err(self.invalid_type("a string or a mapping with one key")),
        }
        .map_err(|err| err.at(&self.node.span))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
}

struct SeqDeserializer<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de, 'a: 'de> SeqAccess<'de> for SeqDeserializer<'a> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(NodeDeserializer { node })
            .map(Some)
            .map_err(|err| err.at(&node.span))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDeserializer<'a> {
    entries: std::slice::Iter<'a, (Key, Node)>,
    value: Option<&'a Node>,
}

impl<'de, 'a: 'de> MapAccess<'de> for MapDeserializer<'a> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(KeyDeserializer { key })
            .map(Some)
            .map_err(|err| err.at(&key.span))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let Some(node) = self.value.take() else {
            return Err(DecodeError::new(
                DiagnosticKind::InvalidValue,
                "a value was read before its key".into(),
            ));
        };
        seed.deserialize(NodeDeserializer { node })
            .map_err(|err| err.at(&node.span))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A mapping key: a string with a span, which is all a struct field name or map key needs.
struct KeyDeserializer<'a> {
    key: &'a Key,
}

impl<'de, 'a: 'de> Deserializer<'de> for KeyDeserializer<'a> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_borrowed_str(&self.key.name)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if name == SPANNED_MAGIC {
            SPAN_HANDOFF.with(|slot| *slot.borrow_mut() = Some(self.key.span.clone()));
        }
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct EnumDeserializer<'a> {
    /// The whole node: a string (unit variant) or a one-key mapping.
    variant: &'a Node,
    variant_name: Option<&'a Key>,
    value: Option<&'a Node>,
}

impl<'de, 'a: 'de> EnumAccess<'de> for EnumDeserializer<'a> {
    type Error = DecodeError;
    type Variant = VariantDeserializer<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantDeserializer<'a>), DecodeError> {
        let variant = match self.variant_name {
            Some(key) => seed
                .deserialize(KeyDeserializer { key })
                .map_err(|err| err.at(&key.span))?,
            None => seed
                .deserialize(NodeDeserializer { node: self.variant })
                .map_err(|err| err.at(&self.variant.span))?,
        };
        Ok((
            variant,
            VariantDeserializer {
                node: self.variant,
                value: self.value,
            },
        ))
    }
}

struct VariantDeserializer<'a> {
    node: &'a Node,
    value: Option<&'a Node>,
}

impl<'a> VariantDeserializer<'a> {
    fn value(&self) -> Result<NodeDeserializer<'a>, DecodeError> {
        match self.value {
            Some(node) => Ok(NodeDeserializer { node }),
            None => Err(DecodeError::new(
                DiagnosticKind::InvalidValue,
                "expected a mapping with one key, found a string".into(),
            )
            .at(&self.node.span)),
        }
    }
}

impl<'de, 'a: 'de> VariantAccess<'de> for VariantDeserializer<'a> {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<(), DecodeError> {
        match self.value {
            None => Ok(()),
            Some(node) => de::Deserialize::deserialize(NodeDeserializer { node }),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        seed.deserialize(self.value()?)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.value()?.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.value()?.deserialize_map(visitor)
    }
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;
    use serde::Deserialize;

    use super::*;
    use crate::workflow::duration::DurationSpec;
    use crate::workflow::node::parse;
    use crate::workflow::span::{SourceFile, Spanned};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Check {
        url: Spanned<String>,
        #[serde(default)]
        retries: u32,
        #[serde(default)]
        timeout: Option<DurationSpec>,
        #[serde(default)]
        headers: IndexMap<String, Spanned<String>>,
    }

    fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, Box<Diagnostic>> {
        let node = parse(&SourceFile::new("t.yaml", text)).expect("test fixture");
        from_node(&node)
    }

    fn at(d: &Diagnostic) -> (usize, usize) {
        (d.span.line, d.span.column)
    }

    #[test]
    fn spanned_values_get_their_node_positions() {
        let check: Check = decode("url: http://x\nheaders:\n  a: b\nretries: 2\ntimeout: 5s\n")
            .expect("test fixture");
        assert_eq!(check.url.value, "http://x");
        assert_eq!(at_span(&check.url.span), (1, 6));
        assert_eq!(at_span(&check.headers["a"].span), (3, 6));
        assert_eq!(check.retries, 2);
        assert_eq!(
            check.timeout,
            Some(DurationSpec(std::time::Duration::from_secs(5)))
        );
    }

    fn at_span(span: &Span) -> (usize, usize) {
        (span.line, span.column)
    }

    #[test]
    fn unknown_keys_point_at_the_key_with_a_suggestion() {
        let err = decode::<Check>("url: x\nretires: 3\n").expect_err("should fail");
        assert_eq!(err.kind, DiagnosticKind::UnknownKey);
        assert_eq!(err.message, "unknown key `retires`");
        assert_eq!(err.label.as_deref(), Some("did you mean `retries`?"));
        assert_eq!(at(&err), (2, 1));
    }

    #[test]
    fn wrong_types_point_at_the_value() {
        let err = decode::<Check>("url: x\nretries: lots\n").expect_err("should fail");
        assert_eq!(
            err.message,
            "expected a non-negative integer, found a string"
        );
        assert_eq!(at(&err), (2, 10));
        let err = decode::<Check>("url: x\nretries: -1\n").expect_err("should fail");
        assert_eq!(
            err.message,
            "invalid value `-1`: expected a non-negative integer"
        );
        assert_eq!(at(&err), (2, 10));
    }

    #[test]
    fn bad_durations_point_at_the_value() {
        let err = decode::<Check>("url: x\ntimeout: 5 parsecs\n").expect_err("should fail");
        assert!(
            err.message.starts_with("invalid duration `5 parsecs`"),
            "{}",
            err.message
        );
        assert_eq!(at(&err), (2, 10));
    }

    #[test]
    fn missing_keys_point_at_the_mapping() {
        let err = decode::<IndexMap<String, Check>>("a:\n  retries: 1\n").expect_err("should fail");
        assert_eq!(err.message, "missing key `url`");
        assert_eq!(at(&err), (2, 3));
    }

    #[test]
    fn nested_errors_keep_the_innermost_position() {
        let err = decode::<Vec<Check>>("- url: a\n- url: b\n  headers: {x: [1]}\n")
            .expect_err("should fail");
        assert_eq!(err.message, "expected a string, found a list");
        assert_eq!(at(&err), (3, 16));
    }
}
