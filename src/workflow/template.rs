//! Template strings: minijinja source kept with its span, rendered lazily when a step runs.

use serde::{Deserialize, Deserializer};

use super::span::Spanned;

/// A string that may contain `{{ ... }}` expressions, rendered when its step runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(pub Spanned<String>);

impl Template {
    pub fn source(&self) -> &str {
        &self.0.value
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Spanned::<String>::deserialize(deserializer).map(Template)
    }
}

impl schemars::JsonSchema for Template {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Template".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Text that may use minijinja `{{ ... }}` expressions, rendered when the step runs."
        })
    }
}

/// Renders templates against the run's context (`env`, `vars`, `secrets`, `steps`, `run`, ...).
///
/// Undefined values are errors: a typo in a template fails the step instead of rendering "".
pub struct Renderer {
    env: minijinja::Environment<'static>,
    context: minijinja::Value,
}

impl Renderer {
    pub fn new(context: serde_json::Value) -> Self {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_filter("shell_quote", shell_quote);
        Self {
            env,
            context: minijinja::Value::from(minijinja::value::Serde(context)),
        }
    }

    pub fn render(&self, template: &Template) -> Result<String, minijinja::Error> {
        self.env.render_str(template.source(), &self.context)
    }

    /// Renders with extra top-level values (a flow's captured values, say) over the run context.
    pub fn render_with(
        &self,
        template: &Template,
        extra: &[(&str, minijinja::Value)],
    ) -> Result<String, minijinja::Error> {
        // A map: `Value::from_iter` over pairs would build a list of pairs.
        let extra = minijinja::Value::from_object(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect::<std::collections::BTreeMap<String, minijinja::Value>>(),
        );
        let context = minijinja::context! { ..extra, ..self.context.clone() };
        self.env.render_str(template.source(), context)
    }
}

/// Quotes a value as one POSIX shell word, so a template value never changes a command's shape.
pub fn shell_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}
