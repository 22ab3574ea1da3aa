//! Decoding: the expanded node tree becomes the typed [`Workflow`].
//!
//! Each top-level key, each environment, each agent and each step is decoded on its own, so one
//! mistake does not hide the next: every problem in the file is reported in one go.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;

use super::diagnostic::{Diagnostic, DiagnosticKind, all_of, did_you_mean, one_of};
use super::duration::DurationSpec;
use super::expand::{ExpandedStep, TemplateScope};
use super::model::{
    AgentConfig, ExpandedWorkflow, NotifyTarget, Phase, Safety, SecretsConfig, Step, StepKind,
    Workflow,
};
use super::node::{Key, Node, Value};
use super::node_deserializer::from_node;
use super::span::{Span, Spanned};
use super::template::{Template, has_template_syntax, noting_rendered};

/// The top-level keys of a workflow file.
pub(crate) const TOP_LEVEL_KEYS: [&str; 13] = [
    "name",
    "description",
    "environments",
    "vars",
    "secrets",
    "agents",
    "safety",
    "steps",
    "repair",
    "on_give_up",
    "on_success",
    "outputs",
    "notify",
];

/// The keys every step kind shares.
pub(crate) const COMMON_STEP_KEYS: [&str; 6] =
    ["id", "name", "required", "if", "timeout", "retries"];

/// Templates written in one place (a step, or the agents), for the static check: with the
/// `if:` expression and the template scope they render in. Kept even for a step that failed
/// to decode, so its templates are still checked.
pub(crate) struct TemplateSite {
    pub(crate) templates: Vec<Template>,
    pub(crate) condition: Option<Template>,
    pub(crate) scope: Option<Arc<TemplateScope>>,
}

/// What is known of a step even when its body did not decode: enough for the checks that do
/// not need the body (duplicate ids, `steps.<id>` references, rollback targets, phases).
#[derive(Clone, Debug)]
pub(crate) struct StepHeader {
    /// `None` when the step has no `id` or it did not decode.
    pub(crate) id: Option<Spanned<String>>,
    /// The kind key, when the step has exactly one known kind.
    pub(crate) kind: Option<&'static str>,
    pub(crate) phase: Phase,
}

/// The templates of one environment value (`url: "http://127.0.0.1:{{ vars.port }}"`).
pub(crate) struct EnvironmentSite {
    pub(crate) environment: String,
    pub(crate) key: String,
    pub(crate) templates: Vec<Template>,
}

/// What decoding found besides the model: every template site and every step's header.
pub(crate) struct Decoded {
    pub(crate) sites: Vec<TemplateSite>,
    pub(crate) environments: Vec<EnvironmentSite>,
    pub(crate) headers: Vec<StepHeader>,
}

pub(crate) struct Decoder {
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl Decoder {
    pub(crate) fn new() -> Self {
        Self {
            diagnostics: Vec::new(),
        }
    }

    fn decode<T: DeserializeOwned>(&mut self, node: &Node) -> Option<T> {
        from_node(node).map_err(|d| self.diagnostics.push(*d)).ok()
    }

    /// Decodes the top-level mapping; the step lists come already expanded.
    pub(crate) fn workflow(
        &mut self,
        root: &Node,
        phases: [Vec<ExpandedStep>; 4],
    ) -> (Workflow, Decoded) {
        let entries = match root.as_map() {
            Some(entries) => entries,
            None => {
                self.diagnostics.push(Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!("expected a workflow (a mapping), found {}", root.describe()),
                    root.span.clone(),
                ));
                &[]
            }
        };
        for (key, _) in entries {
            if !TOP_LEVEL_KEYS.contains(&key.name.as_str()) {
                let mut diagnostic = Diagnostic::new(
                    DiagnosticKind::UnknownKey,
                    format!("unknown key `{}` in workflow", key.name),
                    key.span.clone(),
                )
                .with_help(format!("valid keys here: {}", all_of(TOP_LEVEL_KEYS)));
                diagnostic.label = did_you_mean(&key.name, TOP_LEVEL_KEYS);
                self.diagnostics.push(diagnostic);
            }
        }
        let get = |name: &str| root.get(name);

        // These hold no templates: template syntax in them would be passed on as text.
        for key in ["name", "description", "vars", "secrets", "safety"] {
            if let Some((key, node)) = get(key) {
                self.templates_in(Some(key), node, Some(&[]));
            }
        }
        let name = match get("name") {
            Some((_, node)) => self.decode(node),
            None if root.as_map().is_some() => {
                self.diagnostics.push(Diagnostic::new(
                    DiagnosticKind::MissingKey,
                    "missing key `name` in workflow",
                    root.span.clone(),
                ));
                None
            }
            None => None,
        };
        let description = get("description").and_then(|(_, node)| self.decode(node));
        let environments = match get("environments") {
            Some((key, node)) => {
                Spanned::new(self.named_map(node, "environment"), key.span.clone())
            }
            None => Spanned::new(IndexMap::new(), root.span.clone()),
        };
        let environment_sites = match get("environments") {
            Some((_, node)) => self.environment_sites(node),
            None => Vec::new(),
        };
        let vars = match get("vars") {
            Some((_, node)) => self
                .decode::<IndexMap<String, serde_json::Value>>(node)
                .unwrap_or_default(),
            None => IndexMap::new(),
        };
        let secrets: Option<SecretsConfig> = get("secrets").and_then(|(_, node)| self.decode(node));
        // Agents hold templates too (`api_key: "{{ secrets.openai_api_key }}"`).
        let (agents, agent_templates) = match get("agents") {
            Some((_, node)) => {
                let errors = self.diagnostics.len();
                let (agents, rendered): (IndexMap<String, AgentConfig>, _) =
                    noting_rendered(|| self.named_map(node, "agent"));
                let decoded = self.diagnostics.len() == errors;
                let templates = self.templates_in(None, node, decoded.then_some(&rendered[..]));
                (agents, templates)
            }
            None => (IndexMap::new(), Vec::new()),
        };
        let safety: Safety = get("safety")
            .and_then(|(_, node)| self.decode(node))
            .unwrap_or_default();
        // Notification URLs are templates (`teams: "{{ secrets.teams_webhook }}"`).
        let (notify, notify_templates) = match get("notify") {
            Some((_, node)) => {
                let errors = self.diagnostics.len();
                let (notify, rendered) = noting_rendered(|| self.notify_targets(node));
                let decoded = self.diagnostics.len() == errors;
                let templates = self.templates_in(None, node, decoded.then_some(&rendered[..]));
                (notify, templates)
            }
            None => (Vec::new(), Vec::new()),
        };
        // Outputs render after the run, against the same context as steps (no `parameters`).
        let (outputs, output_templates) = match get("outputs") {
            Some((_, node)) => {
                let errors = self.diagnostics.len();
                let (outputs, rendered): (Option<IndexMap<String, Template>>, _) =
                    noting_rendered(|| self.decode(node));
                let decoded = self.diagnostics.len() == errors;
                let templates = self.templates_in(None, node, decoded.then_some(&rendered[..]));
                (outputs.unwrap_or_default(), templates)
            }
            None => (IndexMap::new(), Vec::new()),
        };

        let expanded = expanded_view(root, &phases);
        let mut sites = vec![
            TemplateSite {
                templates: agent_templates
                    .into_iter()
                    .chain(notify_templates)
                    .collect(),
                condition: None,
                scope: None,
            },
            TemplateSite {
                templates: output_templates,
                condition: None,
                scope: None,
            },
        ];
        let mut headers = Vec::new();
        let mut lists: [Vec<Step>; 4] = Default::default();
        for ((steps, list), phase) in phases.into_iter().zip(&mut lists).zip(Phase::ALL) {
            for expanded in &steps {
                let (header, step) = self.step(expanded, phase, &mut sites);
                headers.extend(header);
                list.extend(step);
            }
        }
        let [steps, repair, on_give_up, on_success] = lists;
        let workflow = Workflow {
            path: Default::default(),
            templates: Vec::new(),
            project_root: Default::default(),
            environment: None,
            name: name.unwrap_or_else(|| Spanned::new(String::new(), root.span.clone())),
            description,
            environments,
            vars,
            secrets,
            agents,
            safety,
            steps,
            repair,
            on_give_up,
            on_success,
            outputs,
            notify,
            expanded: ExpandedWorkflow(expanded),
        };
        (
            workflow,
            Decoded {
                sites,
                environments: environment_sites,
                headers,
            },
        )
    }

    /// `notify:`, a list of targets, each decoded on its own and holding exactly one channel.
    fn notify_targets(&mut self, node: &Node) -> Vec<NotifyTarget> {
        let Value::Seq(items) = &node.value else {
            if !matches!(node.value, Value::Null) {
                self.diagnostics.push(Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!(
                        "expected a list of notification targets, found {}",
                        node.describe()
                    ),
                    node.span.clone(),
                ));
            }
            return Vec::new();
        };
        let mut targets = Vec::new();
        for item in items {
            let Some(target) = self.decode::<NotifyTarget>(item) else {
                continue;
            };
            let channels = [&target.teams, &target.slack, &target.webhook]
                .into_iter()
                .filter(|channel| channel.is_some())
                .count();
            if channels == 1 {
                targets.push(target);
            } else {
                self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticKind::InvalidValue,
                        format!(
                            "a notification target needs exactly one of `teams`, `slack` or `webhook`, found {channels}"
                        ),
                        item.span.clone(),
                    )
                    .with_help("write one target per channel"),
                );
            }
        }
        targets
    }

    /// A mapping of named entries (environments, agents), each decoded on its own.
    fn named_map<T: DeserializeOwned>(&mut self, node: &Node, what: &str) -> IndexMap<String, T> {
        let entries = match &node.value {
            Value::Map(entries) => entries.as_slice(),
            Value::Null => &[],
            _ => {
                self.diagnostics.push(Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!(
                        "expected a mapping of {what}s by name, found {}",
                        node.describe()
                    ),
                    node.span.clone(),
                ));
                &[]
            }
        };
        entries
            .iter()
            .filter_map(|(key, value)| Some((key.name.clone(), self.decode(value)?)))
            .collect()
    }

    /// The templates of every environment value; names and keys are never rendered.
    fn environment_sites(&mut self, node: &Node) -> Vec<EnvironmentSite> {
        let mut sites = Vec::new();
        for (name, environment) in node.as_map().unwrap_or_default() {
            self.unrendered_key(name);
            for (key, value) in environment.as_map().unwrap_or_default() {
                self.unrendered_key(key);
                let templates =
                    self.templates_in(Some(key), value, Some(std::slice::from_ref(&value.span)));
                if !templates.is_empty() {
                    sites.push(EnvironmentSite {
                        environment: name.name.clone(),
                        key: key.name.clone(),
                        templates,
                    });
                }
            }
        }
        sites
    }

    /// A step's header (for any mapping) and the step itself (when all of it decoded).
    fn step(
        &mut self,
        expanded: &ExpandedStep,
        phase: Phase,
        sites: &mut Vec<TemplateSite>,
    ) -> (Option<StepHeader>, Option<Step>) {
        let node = &expanded.node;
        let Some(entries) = node.as_map() else {
            self.diagnostics.push(Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!("expected a step (a mapping), found {}", node.describe()),
                node.span.clone(),
            ));
            return (None, None);
        };
        let mut header = StepHeader {
            id: None,
            kind: None,
            phase,
        };
        let step = self.step_body(expanded, entries, &mut header, sites);
        (Some(header), step)
    }

    fn step_body(
        &mut self,
        expanded: &ExpandedStep,
        entries: &[(Key, Node)],
        header: &mut StepHeader,
        sites: &mut Vec<TemplateSite>,
    ) -> Option<Step> {
        let node = &expanded.node;
        let mut id: Option<Spanned<String>> = None;
        let mut name = None;
        let mut required = true;
        let mut condition = None;
        let mut timeout: Option<DurationSpec> = None;
        let mut retries = 0;
        let mut kinds: Vec<(&Key, &Node)> = Vec::new();
        let mut unknown: Vec<&Key> = Vec::new();
        let mut ok = true;
        for (key, value) in entries {
            if COMMON_STEP_KEYS.contains(&key.name.as_str()) && key.name != "if" {
                // Ids, names and limits are never rendered.
                self.templates_in(Some(key), value, Some(&[]));
            }
            let decoded = match key.name.as_str() {
                "id" => self.decode(value).map(|v| id = Some(v)),
                "name" => self.decode(value).map(|v| name = Some(v)),
                "required" => self.decode(value).map(|v| required = v),
                "if" => self.decode(value).map(|v| condition = Some(v)),
                "timeout" => self.decode(value).map(|v| timeout = Some(v)),
                "retries" => self.decode(value).map(|v| retries = v),
                kind if StepKind::KEYS.contains(&kind) => {
                    kinds.push((key, value));
                    Some(())
                }
                _ => {
                    unknown.push(key);
                    Some(())
                }
            };
            ok &= decoded.is_some();
        }
        let known_keys = || COMMON_STEP_KEYS.iter().chain(&StepKind::KEYS).copied();
        let mut kind_typos = 0;
        for key in &unknown {
            if kinds.is_empty()
                && let Some(suggestion) = did_you_mean(&key.name, StepKind::KEYS)
            {
                kind_typos += 1;
                self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticKind::UnknownStepKind,
                        format!("unknown step kind `{}`", key.name),
                        key.span.clone(),
                    )
                    .with_label(suggestion)
                    .with_help(format!("a step kind is one of {}", one_of(StepKind::KEYS))),
                );
                continue;
            }
            let mut diagnostic = Diagnostic::new(
                DiagnosticKind::UnknownKey,
                format!("unknown key `{}` in step", key.name),
                key.span.clone(),
            )
            .with_help(format!(
                "a step has the keys {}, plus one kind: {}",
                all_of(COMMON_STEP_KEYS),
                one_of(StepKind::KEYS)
            ));
            diagnostic.label = did_you_mean(&key.name, known_keys());
            self.diagnostics.push(diagnostic);
        }
        ok &= unknown.is_empty();
        if kinds.is_empty() && kind_typos == 0 {
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::UnknownStepKind,
                    "step has no kind",
                    node.span.clone(),
                )
                .with_help(format!("add one of {}", one_of(StepKind::KEYS))),
            );
        }
        if let [(first, _), (second, _), ..] = kinds.as_slice() {
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::ConflictingStepKinds,
                    format!("step has two kinds, `{}` and `{}`", first.name, second.name),
                    second.span.clone(),
                )
                .with_note("the first kind is here", Some(first.span.clone()))
                .with_help("split it into two steps"),
            );
            ok = false;
        }
        if id.is_none() && entries.iter().all(|(key, _)| key.name != "id") {
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::MissingKey,
                    "missing key `id` in step",
                    node.span.clone(),
                )
                .with_help("every step needs an `id`: other steps and reports refer to it"),
            );
            ok = false;
        }
        header.id.clone_from(&id);
        if let [(key, _)] = kinds.as_slice() {
            header.kind = StepKind::KEYS.into_iter().find(|k| *k == key.name);
        }
        let (kind_key, kind_node) = kinds.first().copied()?;
        let (kind, rendered) = noting_rendered(|| self.kind(&kind_key.name, kind_node));
        let templates = self.templates_in(
            Some(kind_key),
            kind_node,
            kind.is_some().then_some(&rendered[..]),
        );
        sites.push(TemplateSite {
            templates,
            condition: condition.clone(),
            scope: expanded.scope.clone(),
        });
        let kind = kind?;
        if !ok {
            return None;
        }
        Some(Step {
            id: id?,
            name,
            kind,
            required,
            condition,
            timeout,
            retries,
            span: node.span.clone(),
            template: expanded.scope.as_ref().map(Arc::clone),
        })
    }
}

/// Expands the step-kind table into `Decoder::kind`.
macro_rules! decode_step_kind {
    ($($(#[$doc:meta])* $key:ident => $Variant:ident($Config:ty),)*) => {
        impl Decoder {
            /// The kind `key` names, with its settings decoded from `node`.
            fn kind(&mut self, key: &str, node: &Node) -> Option<StepKind> {
                match key {
                    $(stringify!($key) => self.decode::<$Config>(node).map(StepKind::$Variant),)*
                    // The caller passes only keys in `StepKind::KEYS`; say so rather than
                    // drop the step if that ever changes.
                    other => {
                        self.diagnostics.push(Diagnostic::new(
                            DiagnosticKind::UnknownStepKind,
                            format!("unknown step kind `{other}`"),
                            node.span.clone(),
                        ));
                        None
                    }
                }
            }
        }
    };
}
super::step_kind::step_kinds!(decode_step_kind);

/// The workflow as written, with the expanded step lists (see `plan`).
fn expanded_view(root: &Node, phases: &[Vec<ExpandedStep>; 4]) -> Node {
    let Some(entries) = root.as_map() else {
        return root.clone();
    };
    let entries = entries
        .iter()
        .map(|(key, value)| {
            let Some(index) = Phase::ALL.iter().position(|phase| phase.key() == key.name) else {
                return (key.clone(), value.clone());
            };
            let steps = phases[index].iter().map(expanded_step).collect();
            (
                key.clone(),
                Node::new(Value::Seq(steps), value.span.clone()),
            )
        })
        .collect();
    Node::new(Value::Map(entries), root.span.clone())
}

/// A step as written; one from a template also shows the file and its bound parameters.
fn expanded_step(step: &ExpandedStep) -> Node {
    let (Some(scope), Value::Map(entries)) = (&step.scope, &step.node.value) else {
        return step.node.clone();
    };
    let key = |name: &str| Key {
        name: name.to_owned(),
        span: Span::detached(),
    };
    let text = |text: String| Node::new(Value::String(text), Span::detached());
    let parameters = scope
        .parameters
        .iter()
        .map(|(name, parameter)| (key(name), parameter.node.clone()))
        .collect();
    let mut entries = entries.clone();
    entries.push((key("from_template"), text(scope.path.display().to_string())));
    entries.push((
        key("parameters"),
        Node::new(Value::Map(parameters), Span::detached()),
    ));
    Node::new(Value::Map(entries), step.node.span.clone())
}

impl Decoder {
    /// The strings under `node` (the value of `key`) that use template syntax, each as a
    /// template with its own span: those inside a node in `rendered` (noted while `node`
    /// decoded, see [`noting_rendered`]). Template syntax anywhere else, in keys too, would be
    /// passed on as text: each is an error. With `rendered` unknown (`node` did not decode,
    /// which is reported already), every such string is taken for a template, so it is still
    /// checked.
    fn templates_in(
        &mut self,
        key: Option<&Key>,
        node: &Node,
        rendered: Option<&[Span]>,
    ) -> Vec<Template> {
        let mut found = Vec::new();
        self.walk(node, rendered, false, key, &mut found);
        found
    }

    fn walk(
        &mut self,
        node: &Node,
        rendered: Option<&[Span]>,
        inside: bool,
        key: Option<&Key>,
        found: &mut Vec<Template>,
    ) {
        let inside = inside
            || rendered.is_none_or(|spans| spans.iter().any(|span| same_node(span, &node.span)));
        match &node.value {
            Value::String(text) if has_template_syntax(text) => {
                if inside {
                    found.push(Template(Spanned::new(text.clone(), node.span.clone())));
                } else {
                    let what =
                        key.map_or_else(|| "this value".to_owned(), |k| format!("`{}`", k.name));
                    self.diagnostics.push(
                        Diagnostic::new(
                            DiagnosticKind::UnrenderedTemplate,
                            format!("{what} is not a template, but uses template syntax"),
                            node.span.clone(),
                        )
                        .with_label("never rendered: this text would be used as written")
                        .with_help(RENDERED_HELP),
                    );
                }
            }
            Value::Seq(items) => {
                for item in items {
                    self.walk(item, rendered, inside, key, found);
                }
            }
            Value::Map(entries) => {
                for (entry_key, value) in entries {
                    if rendered.is_some() {
                        self.unrendered_key(entry_key);
                    }
                    self.walk(value, rendered, inside, Some(entry_key), found);
                }
            }
            _ => {}
        }
    }

    /// Keys are never rendered.
    fn unrendered_key(&mut self, key: &Key) {
        if has_template_syntax(&key.name) {
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::UnrenderedTemplate,
                    format!(
                        "key `{}` uses template syntax, but keys are not rendered",
                        key.name
                    ),
                    key.span.clone(),
                )
                .with_label("never rendered: this key would be used as written")
                .with_help(RENDERED_HELP),
            );
        }
    }
}

/// Where templates are rendered, for a diagnostic about template syntax anywhere else.
const RENDERED_HELP: &str = "only step settings, environment values and agents' `base_url`, \
     `api_key` and `deployment` are rendered; write this value out in full";

/// Whether two spans are the same node: the same file (the same read of it), line and column.
fn same_node(a: &Span, b: &Span) -> bool {
    let same_file = match (&a.file, &b.file) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    same_file && a.line == b.line && a.column == b.column
}
