//! Where a value came from: the file, line and column a diagnostic points at.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::IntoDeserializer;
use serde::{Deserialize, Deserializer};

/// A workflow or template file as it was read, kept so diagnostics can quote its lines.
#[derive(Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            path: path.into(),
            text: text.into(),
        })
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line(&self, line: usize) -> Option<&str> {
        self.text
            .lines()
            .nth(line.checked_sub(1)?)
            .map(|l| l.trim_end_matches('\r'))
    }
}

/// A position in a source file: 1-based line and column (in characters), plus a length.
#[derive(Clone, PartialEq, Eq)]
pub struct Span {
    pub file: Option<Arc<SourceFile>>,
    pub line: usize,
    pub column: usize,
    pub len: usize,
}

impl Span {
    /// A span for values built in code rather than read from a file.
    pub fn detached() -> Self {
        Self {
            file: None,
            line: 0,
            column: 0,
            len: 0,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref().map(|f| f.path.as_path())
    }
}

impl fmt::Debug for Span {
    // The file text would drown every model dump; the position is what matters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            Some(path) => write!(f, "{}:{}:{}", path.display(), self.line, self.column),
            None => f.write_str("<built-in>"),
        }
    }
}

/// A value together with the span of the YAML node it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }

    pub fn detached(value: T) -> Self {
        Self::new(value, Span::detached())
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// The newtype-struct name by which [`Spanned`] asks the workflow's node deserializer for a span.
///
/// Serde gives a `Deserialize` impl no way to ask its deserializer where a value came from, so
/// the two agree on this private name: the node deserializer (`super::decode::de`) puts the node's
/// span in [`SPAN_HANDOFF`] and immediately calls `visit_newtype_struct`, whose first act is to
/// take it. Any other deserializer (serde's buffering for `untagged`, a JSON value) leaves the
/// slot empty and the value is [`Span::detached`].
pub(crate) const SPANNED_MAGIC: &str = "$__agent_orch_private_spanned";

thread_local! {
    pub(crate) static SPAN_HANDOFF: std::cell::RefCell<Option<Span>> =
        const { std::cell::RefCell::new(None) };
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpannedVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for SpannedVisitor<T> {
            type Value = Spanned<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                let span = SPAN_HANDOFF
                    .with(|slot| slot.borrow_mut().take())
                    .unwrap_or_else(Span::detached);
                T::deserialize(deserializer).map(|value| Spanned::new(value, span))
            }

            // Deserializers that forward newtype structs to `deserialize_any` (serde's
            // `value::*Deserializer`s) hand over the plain value: keep it, without a span.
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                detached(v.into_deserializer())
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                detached(v.into_deserializer())
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                detached(v.into_deserializer())
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                detached(v.into_deserializer())
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                detached(v.into_deserializer())
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                detached(v.into_deserializer())
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                detached(().into_deserializer())
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                detached(serde::de::value::SeqAccessDeserializer::new(seq))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                detached(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        fn detached<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Spanned<T>, D::Error> {
            T::deserialize(deserializer).map(Spanned::detached)
        }

        deserializer
            .deserialize_newtype_struct(SPANNED_MAGIC, SpannedVisitor(std::marker::PhantomData))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as ValueError, StrDeserializer};

    use super::*;

    #[test]
    fn other_deserializers_give_detached_values() {
        let from_json: Spanned<String> =
            serde_json::from_value(serde_json::json!("x")).expect("json string");
        assert_eq!(from_json, Spanned::detached("x".to_owned()));
        let plain: StrDeserializer<'_, ValueError> = "y".into_deserializer();
        let from_str = Spanned::<String>::deserialize(plain).expect("plain string");
        assert_eq!(from_str, Spanned::detached("y".to_owned()));
        let list: Spanned<Vec<u8>> =
            serde_json::from_value(serde_json::json!([1, 2])).expect("json list");
        assert_eq!(list.value, [1, 2]);
        // Nothing was left behind for the next value to pick up.
        assert!(SPAN_HANDOFF.with(|slot| slot.borrow().is_none()));
    }
}
