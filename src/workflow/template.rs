//! Template strings and their lazy rendering.
//!
//! A [`Template`] is minijinja source kept with its span. It is rendered when its step runs,
//! by a [`Renderer`] holding the run's context:
//!
//! | name | value |
//! |---|---|
//! | `env` | the selected environment's values, rendered at run start, plus `env.name` |
//! | `vars` | the workflow's `vars`, after `--var` overrides |
//! | `secrets` | the fetched secrets, keyed by [`secret_key`] (`secrets.openai_api_key`) |
//! | `steps.<id>` | `status` (`passed`, `failed`, ...), `message`, `exit_code`, `outputs` |
//! | `run` | `id`, `iteration`, `max_iterations`, `source_hash` (of the checkout's files, patches included) |
//! | `ado` | Azure DevOps values (`build_id`, `branch`, ...); empty outside a pipeline |
//! | `parameters` | inside a template: the values bound where it was included |
//! | `flow` | inside a verify flow: values captured from earlier responses |
//!
//! The engine builds that context (`engine::template_context`) and hands it to
//! [`Renderer::new`]; [`Renderer::for_step`] adds the step's `parameters`. The loader checks
//! every template against the same names (`validate`), so these tables must agree.
//!
//! Undefined values are errors (minijinja's strict mode): a typo fails the step instead of
//! rendering "". The `default` filter still works for values that may be missing, as in
//! `{{ ado.build_id | default('local') }}`. The `shell_quote` filter makes a value one shell word;
//! `yaml_quote` makes it one YAML scalar, whatever it holds.

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::expand::TemplateScope;
use super::model::Step;
use super::span::{Span, Spanned};

/// A string that may contain `{{ ... }}` expressions, rendered when its step runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(pub Spanned<String>);

impl Template {
    /// A template read from a workflow node; the node is noted as rendered (see
    /// [`noting_rendered`]). What a hand-written visitor uses for a short form.
    pub(crate) fn read(source: Spanned<String>) -> Self {
        note_rendered(&source.span);
        Template(source)
    }

    pub fn source(&self) -> &str {
        &self.0.value
    }

    pub fn span(&self) -> &Span {
        &self.0.span
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Spanned::<String>::deserialize(deserializer).map(Template::read)
    }
}

/// Whether `text` uses template syntax (`{{`, `{%` or `{#`); other text renders as itself.
pub(crate) fn has_template_syntax(text: &str) -> bool {
    ["{{", "{%", "{#"]
        .iter()
        .any(|marker| text.contains(marker))
}

thread_local! {
    /// The nodes read as templates by the decode in progress, when one is noting them.
    static RENDERED_NODES: std::cell::RefCell<Option<Vec<Span>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `decode` and returns, with its result, the nodes it read as templates: a string read
/// as a [`Template`], or a free-form value whose strings are all rendered (a JSON body, read
/// through [`rendered_strings`]). Template syntax anywhere else would be passed on as text.
pub(crate) fn noting_rendered<T>(decode: impl FnOnce() -> T) -> (T, Vec<Span>) {
    let outer = RENDERED_NODES.with(|slot| slot.borrow_mut().replace(Vec::new()));
    let result = decode();
    let noted = RENDERED_NODES.with(|slot| std::mem::replace(&mut *slot.borrow_mut(), outer));
    (result, noted.unwrap_or_default())
}

fn note_rendered(span: &Span) {
    if span.file.is_none() {
        return;
    }
    RENDERED_NODES.with(|slot| {
        if let Some(noted) = slot.borrow_mut().as_mut() {
            noted.push(span.clone());
        }
    });
}

/// `deserialize_with` for a free-form value whose strings the step renders as templates
/// (`json: {user: "{{ vars.user }}"}`): its node is noted as rendered.
pub(crate) fn rendered_strings<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let value = Spanned::<T>::deserialize(deserializer)?;
    note_rendered(&value.span);
    Ok(value.value)
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

/// A template that failed to render, with the span of the template in its workflow file.
#[derive(Debug, thiserror::Error)]
#[error("failed to render template at {span}: {}", detail(.source))]
pub struct RenderError {
    pub span: Span,
    #[source]
    pub source: minijinja::Error,
}

impl RenderError {
    /// What went wrong, without the position: `undefined value (`vars.x` is undefined)`.
    pub fn reason(&self) -> String {
        detail(&self.source)
    }
}

fn detail(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{} ({detail})", err.kind()),
        None => err.kind().to_string(),
    }
}

/// The roots a template may refer to; anything else is an undefined variable.
pub(crate) const CONTEXT_ROOTS: [&str; 7] = [
    "env",
    "vars",
    "secrets",
    "steps",
    "run",
    "ado",
    "parameters",
];

/// Roots a step kind adds for its own templates through [`Renderer::render_with`]: a verify
/// flow's captured values (`{{ flow.token }}`). Their fields are known only at run time.
pub(crate) const STEP_KIND_ROOTS: [&str; 1] = ["flow"];

/// What `steps.<id>` holds.
pub(crate) const STEP_FIELDS: [&str; 4] = ["status", "message", "exit_code", "outputs"];

/// What `run` holds.
pub(crate) const RUN_FIELDS: [&str; 4] = ["id", "iteration", "max_iterations", "source_hash"];

/// Renders templates against the run's context (see the module docs for what it holds).
pub struct Renderer {
    env: minijinja::Environment<'static>,
    context: serde_json::Map<String, serde_json::Value>,
}

impl Renderer {
    /// A renderer over a context given whole, as a JSON object of the roots.
    pub fn new(context: serde_json::Value) -> Self {
        let context = match context {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_filter("shell_quote", shell_quote);
        env.add_filter("yaml_quote", yaml_quote);
        Self { env, context }
    }

    /// The renderer for one step: this context plus `parameters`, the values bound where the
    /// step's template was included. Steps not from a template get a plain copy.
    pub fn for_step(&self, step: &Step) -> Result<Renderer, RenderError> {
        let mut renderer = Renderer {
            env: self.env.clone(),
            context: self.context.clone(),
        };
        if let Some(scope) = &step.template {
            let parameters = self.parameters(scope)?;
            renderer.context.insert("parameters".into(), parameters);
        }
        Ok(renderer)
    }

    pub fn render(&self, template: &Template) -> Result<String, RenderError> {
        self.render_with(template, &[])
    }

    /// Renders with extra top-level values (a flow's captured values, say) over the run context.
    pub fn render_with(
        &self,
        template: &Template,
        extra: &[(&str, minijinja::Value)],
    ) -> Result<String, RenderError> {
        self.env
            .render_str(template.source(), self.context_value(extra))
            .map_err(|source| RenderError {
                span: template.span().clone(),
                source,
            })
    }

    /// Renders every string of a JSON value (an environment value, say); keys and other
    /// values stay as written. The error is the reason, without a position.
    pub(crate) fn render_strings_of(
        &self,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        self.render_strings(value, &self.context_value(&[]))
            .map_err(|err| detail(&err))
    }

    /// Renders `template` with the text of the `{{ ... }}` outputs for which `replace` (given
    /// each output's index, in rendering order) returns a replacement. Returns the text and
    /// how many outputs there were. For checks that compare a rendering against the shape of
    /// its template.
    pub fn render_replacing(
        &self,
        template: &Template,
        replace: impl Fn(usize) -> Option<String> + Send + Sync + 'static,
    ) -> Result<(String, usize), RenderError> {
        let outputs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut env = self.env.clone();
        env.set_formatter({
            let outputs = std::sync::Arc::clone(&outputs);
            move |out, state, value| {
                let index = outputs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match replace(index) {
                    Some(text) => out.write_str(&text).map_err(minijinja::Error::from),
                    None => minijinja::escape_formatter(out, state, value),
                }
            }
        });
        let text = env
            .render_str(template.source(), self.context_value(&[]))
            .map_err(|source| RenderError {
                span: template.span().clone(),
                source,
            })?;
        Ok((text, outputs.load(std::sync::atomic::Ordering::Relaxed)))
    }

    /// Evaluates an expression such as an `if:` (`steps.build.status == 'passed'`) to a bool.
    pub fn evaluate_condition(&self, expression: &Template) -> Result<bool, RenderError> {
        let fail = |source| RenderError {
            span: expression.span().clone(),
            source,
        };
        let compiled = self
            .env
            .compile_expression(expression.source())
            .map_err(fail)?;
        let value = compiled.eval(self.context_value(&[])).map_err(fail)?;
        Ok(value.is_true())
    }

    fn context_value(&self, extra: &[(&str, minijinja::Value)]) -> minijinja::Value {
        let base = json_value(&serde_json::Value::Object(self.context.clone()));
        if extra.is_empty() {
            return base;
        }
        // A map: `Value::from_iter` over pairs would build a list of pairs.
        let extra = minijinja::Value::from_object(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect::<std::collections::BTreeMap<String, minijinja::Value>>(),
        );
        minijinja::context! { ..extra, ..base }
    }

    /// A scope's parameter values, their strings rendered where they were written: in the
    /// context of the include site, whose own `parameters` are its parent scope's.
    fn parameters(&self, scope: &TemplateScope) -> Result<serde_json::Value, RenderError> {
        let mut context = self.context.clone();
        match &scope.parent {
            Some(parent) => {
                context.insert("parameters".into(), self.parameters(parent)?);
            }
            None => {
                context.remove("parameters");
            }
        }
        let context = json_value(&serde_json::Value::Object(context));
        let mut values = serde_json::Map::new();
        for (name, parameter) in &scope.parameters {
            let value = self
                .render_strings(&parameter.value, &context)
                .map_err(|source| RenderError {
                    span: parameter.span.clone(),
                    source,
                })?;
            values.insert(name.clone(), value);
        }
        Ok(serde_json::Value::Object(values))
    }

    fn render_strings(
        &self,
        value: &serde_json::Value,
        context: &minijinja::Value,
    ) -> Result<serde_json::Value, minijinja::Error> {
        Ok(match value {
            serde_json::Value::String(text) => {
                serde_json::Value::String(self.env.render_str(text, context)?)
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|item| self.render_strings(item, context))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_strings(v, context)?)))
                    .collect::<Result<_, minijinja::Error>>()?,
            ),
            other => other.clone(),
        })
    }
}

impl fmt::Debug for Renderer {
    // Never print the context: it holds secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

fn json_value(value: &serde_json::Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}

/// How a secret's name appears under `secrets`: `openai-api-key` is `secrets.openai_api_key`.
pub fn secret_key(name: &str) -> String {
    name.replace('-', "_")
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

/// Every `{{ ... }}` in `source`, with its byte offset.
pub fn interpolations(source: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    let mut rest = source;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start..].find("}}") else {
            break;
        };
        let end = start + length + 2;
        found.push((offset + start, &rest[start..end]));
        offset += end;
        rest = &rest[end..];
    }
    found
}

/// Quotes a value as one YAML scalar (a double-quoted JSON string, which YAML reads the same),
/// so a template value never adds a key or a document to a manifest.
pub fn yaml_quote(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::workflow::{LoadOptions, load};

    fn template(source: &str) -> Template {
        Template(Spanned::detached(source.to_owned()))
    }

    fn run_context() -> serde_json::Value {
        json!({
            "env": {"name": "staging", "url": "https://staging.test"},
            "vars": {"registry": "acr.test", "who": "it's me"},
            "secrets": {},
            "steps": {"build": {"status": "passed", "outputs": {"version": "1.2"}}},
            "run": {"id": "r1", "iteration": 2, "max_iterations": 5},
            "ado": {},
        })
    }

    #[test]
    fn renders_the_run_context() {
        let renderer = Renderer::new(run_context());
        let rendered = renderer
            .render(&template(
                "{{ vars.registry }}/app:{{ steps.build.outputs.version }} {{ ado.build_id | default('local') }} #{{ run.iteration }}",
            ))
            .expect("renders");
        assert_eq!(rendered, "acr.test/app:1.2 local #2");
    }

    #[test]
    fn undefined_values_are_errors_naming_the_template() {
        let renderer = Renderer::new(run_context());
        let file = crate::workflow::span::SourceFile::new("w.yaml", "gate: x\n");
        let span = Span {
            file: Some(file),
            line: 1,
            column: 7,
            len: 1,
        };
        let err = renderer
            .render(&Template(Spanned::new("{{ vars.nope }}".into(), span)))
            .expect_err("strict undefined");
        let message = err.to_string();
        assert!(
            message.starts_with("failed to render template at w.yaml:1:7: "),
            "{message}"
        );
        assert!(message.contains("undefined"), "{message}");
    }

    #[test]
    fn extra_values_sit_beside_the_run_context() {
        let renderer = Renderer::new(run_context());
        let flow = minijinja::Value::from(minijinja::value::Serde(json!({"token": "t0k"})));
        let rendered = renderer
            .render_with(
                &template("{{ env.url }}/me?t={{ flow.token }}"),
                &[("flow", flow)],
            )
            .expect("renders");
        assert_eq!(rendered, "https://staging.test/me?t=t0k");
    }

    #[test]
    fn shell_quote_makes_one_word() {
        assert_eq!(shell_quote("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
        let renderer = Renderer::new(run_context());
        let rendered = renderer
            .render(&template("echo {{ vars.who | shell_quote }}"))
            .expect("renders");
        assert_eq!(rendered, r"echo 'it'\''s me'");
    }

    #[test]
    fn yaml_quote_makes_one_scalar() {
        let hostile = "x\n---\nkind: ConfigMap\nextra: \"1\"";
        let quoted = yaml_quote(hostile);
        let parsed: serde_json::Value =
            serde_saphyr::from_str(&format!("note: {quoted}\n")).unwrap();
        assert_eq!(parsed, json!({"note": hostile}));
        let rendered = Renderer::new(json!({"vars": {"v": "a: b"}}))
            .render(&template("k: {{ vars.v | yaml_quote }}"))
            .unwrap();
        assert_eq!(rendered, r#"k: "a: b""#);
    }

    #[test]
    fn conditions_evaluate_to_booleans() {
        let renderer = Renderer::new(run_context());
        let holds = |expression: &str| {
            renderer
                .evaluate_condition(&template(expression))
                .expect("evaluates")
        };
        assert!(holds("steps.build.status == 'passed'"));
        assert!(!holds("env.name == 'prod'"));
        assert!(holds("run.iteration > 1 and env.name != 'prod'"));
        assert!(
            renderer
                .evaluate_condition(&template("steps.nope.status == 'x'"))
                .is_err()
        );
    }

    #[test]
    fn template_parameters_render_in_their_include_site_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(".git")).expect("mkdir");
        std::fs::write(
            dir.path().join("w.yaml"),
            "name: w\nenvironments: {staging: {url: x}}\nsteps:\n  - template: outer.yaml\n    parameters: {base: \"{{ env.url }}\"}\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("outer.yaml"),
            "parameters: {base: }\nsteps:\n  - template: inner.yaml\n    parameters: {url: \"{{ parameters.base }}/login\"}\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("inner.yaml"),
            "parameters: {url: , method: {default: GET}}\nsteps:\n  - id: login\n    gate: \"curl -X {{ parameters.method }} {{ parameters.url }}\"\n",
        )
        .expect("write");
        let workflow = load(&dir.path().join("w.yaml"), &LoadOptions::default())
            .unwrap_or_else(|d| panic!("{}", d.render(false)));
        let step = &workflow.steps[0];
        let crate::workflow::model::StepKind::Gate(gate) = &step.kind else {
            panic!("not a gate step: {step:?}");
        };
        let command = &gate.run;
        let renderer = Renderer::new(run_context())
            .for_step(step)
            .expect("parameters render");
        assert_eq!(
            renderer.render(command).expect("renders"),
            "curl -X GET https://staging.test/login"
        );
        // Without the step's scope, `parameters` is undefined: a plain renderer refuses.
        assert!(Renderer::new(run_context()).render(command).is_err());
        // The step itself is located in the template file it came from.
        assert!(
            step.span
                .path()
                .is_some_and(|p| p.ends_with(Path::new("inner.yaml")))
        );
    }
}
