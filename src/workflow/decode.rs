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
    AgentConfig, ExpandedWorkflow, Phase, Safety, SecretsConfig, Step, StepKind, Workflow,
};
use super::node::{Key, Node, Value};
use super::node_deserializer::from_node;
use super::span::{Span, Spanned};
use super::template::Template;

/// The top-level keys of a workflow file.
pub(crate) const TOP_LEVEL_KEYS: [&str; 12] = [
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
    ) -> (Workflow, Vec<TemplateSite>) {
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
        let vars = match get("vars") {
            Some((_, node)) => self
                .decode::<IndexMap<String, serde_json::Value>>(node)
                .unwrap_or_default(),
            None => IndexMap::new(),
        };
        let secrets: Option<SecretsConfig> = get("secrets").and_then(|(_, node)| self.decode(node));
        let agents: IndexMap<String, AgentConfig> = match get("agents") {
            Some((_, node)) => self.named_map(node, "agent"),
            None => IndexMap::new(),
        };
        // Agents hold templates too (`api_key: "{{ secrets.openai_api_key }}"`).
        let agent_templates = get("agents").map_or_else(Vec::new, |(_, node)| templates_in(node));
        let safety: Safety = get("safety")
            .and_then(|(_, node)| self.decode(node))
            .unwrap_or_default();
        let outputs: IndexMap<String, Template> = get("outputs")
            .and_then(|(_, node)| self.decode(node))
            .unwrap_or_default();
        // Outputs render after the run, against the same context as steps (no `parameters`).
        let output_templates = get("outputs").map_or_else(Vec::new, |(_, node)| templates_in(node));

        let expanded = expanded_view(root, &phases);
        let mut sites = vec![
            TemplateSite {
                templates: agent_templates,
                condition: None,
                scope: None,
            },
            TemplateSite {
                templates: output_templates,
                condition: None,
                scope: None,
            },
        ];
        let mut lists: [Vec<Step>; 4] = Default::default();
        for (steps, list) in phases.into_iter().zip(&mut lists) {
            for expanded in &steps {
                if let Some(step) = self.step(expanded, &mut sites) {
                    list.push(step);
                }
            }
        }
        let [steps, repair, on_give_up, on_success] = lists;
        let workflow = Workflow {
            path: Default::default(),
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
            expanded: ExpandedWorkflow(expanded),
        };
        (workflow, sites)
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

    fn step(&mut self, expanded: &ExpandedStep, sites: &mut Vec<TemplateSite>) -> Option<Step> {
        let node = &expanded.node;
        let Some(entries) = node.as_map() else {
            self.diagnostics.push(Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!("expected a step (a mapping), found {}", node.describe()),
                node.span.clone(),
            ));
            return None;
        };
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
        let (kind_key, kind_node) = kinds.first().copied()?;
        let kind = self.kind(&kind_key.name, kind_node);
        sites.push(TemplateSite {
            templates: templates_in(kind_node),
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

    fn kind(&mut self, key: &str, node: &Node) -> Option<StepKind> {
        match key {
            "gate" => self.decode(node).map(StepKind::Gate),
            "service" => self.decode(node).map(StepKind::Service),
            "deploy" => self.decode(node).map(StepKind::Deploy),
            "verify" => self.decode(node).map(StepKind::Verify),
            "fix" => self.decode(node).map(StepKind::Fix),
            "review" => self.decode(node).map(StepKind::Review),
            "rollback" => self.decode(node).map(StepKind::Rollback),
            "pull_request" => self.decode(node).map(StepKind::PullRequest),
            // A key in `StepKind::KEYS` without an arm here: say so rather than drop the step.
            other => {
                self.diagnostics.push(Diagnostic::new(
                    DiagnosticKind::UnknownStepKind,
                    format!("step kind `{other}` cannot be decoded (missing in `Decoder::kind`)"),
                    node.span.clone(),
                ));
                None
            }
        }
    }
}

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

/// Every string under `node` that uses template syntax, as a template with its own span.
///
/// Found on the node tree rather than the decoded settings, so the check does not depend on
/// how each step kind's types read their templates (a short form, a hand-written visitor).
/// Strings without `{{`, `{%` or `{#` render as themselves and need no check.
fn templates_in(node: &Node) -> Vec<Template> {
    fn walk(node: &Node, found: &mut Vec<Template>) {
        match &node.value {
            Value::String(text) if ["{{", "{%", "{#"].iter().any(|m| text.contains(m)) => {
                found.push(Template(Spanned::new(text.clone(), node.span.clone())));
            }
            Value::Seq(items) => items.iter().for_each(|item| walk(item, found)),
            Value::Map(entries) => entries.iter().for_each(|(_, value)| walk(value, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(node, &mut found);
    found
}
