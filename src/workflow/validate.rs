//! Semantic checks on a decoded workflow: references, ids, limits and every template's variables.
//!
//! All checks run and all problems are reported, each pointing at the node it is about.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::decode::{Decoded, EnvironmentSite, StepHeader, TemplateSite};
use super::dependency_order;
use super::diagnostic::{Diagnostic, DiagnosticKind, all_of, did_you_mean};
use super::environment::{self, ENVIRONMENT_ROOTS};
use super::expand::TemplateScope;
use super::model::{Phase, StepKind, Workflow};
use super::node::{Node, Value};
use super::span::Span;
use super::template::{CONTEXT_ROOTS, RUN_FIELDS, STEP_FIELDS, STEP_KIND_ROOTS, secret_key};

/// `decoded.headers` describe every step, including those that did not decode (missing from
/// `workflow`): ids, kinds and phases are checked on them, so one broken step hides nothing.
pub(crate) fn validate(workflow: &Workflow, decoded: &Decoded, root: &Node) -> Vec<Diagnostic> {
    let headers = &decoded.headers;
    let mut diagnostics = Vec::new();
    step_ids(headers, &mut diagnostics);
    agents(workflow, &mut diagnostics);
    repair_steps(headers, &mut diagnostics);
    delivery_steps(headers, &mut diagnostics);
    output_names(root, &mut diagnostics);
    rollback_targets(workflow, headers, &mut diagnostics);
    metric_baselines(workflow, headers, &mut diagnostics);
    safety(workflow, root, &mut diagnostics);
    approvals(root, &mut diagnostics);
    environment_clusters(root, &mut diagnostics);
    let checker = TemplateChecker::new(workflow, headers);
    checker.check_sites(&decoded.sites, &mut diagnostics);
    checker.check_environments(&decoded.environments, &mut diagnostics);
    diagnostics
}

fn step_ids(headers: &[StepHeader], diagnostics: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &Span> = HashMap::new();
    for step in headers {
        let Some(id) = &step.id else { continue };
        match seen.get(id.value.as_str()) {
            Some(first) => diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::DuplicateId,
                    format!("duplicate step id `{}`", id.value),
                    id.span.clone(),
                )
                .with_note(
                    format!("`{}` is first defined here", id.value),
                    Some((*first).clone()),
                )
                .with_help(
                    "step ids must be unique across `steps`, `repair`, `on_give_up` and `on_success`",
                ),
            ),
            None => {
                seen.insert(&id.value, &id.span);
            }
        }
    }
}

fn agents(workflow: &Workflow, diagnostics: &mut Vec<Diagnostic>) {
    let agent_names = || workflow.agents.keys().map(String::as_str);
    for step in workflow.all_steps() {
        let agent = match &step.kind {
            StepKind::Fix(config) => Some(&config.agent),
            StepKind::Review(config) => Some(&config.agent),
            _ => None,
        };
        if let Some(agent) = agent
            && !workflow.agents.contains_key(&agent.value)
        {
            let mut diagnostic = Diagnostic::new(
                DiagnosticKind::UnknownReference,
                format!("unknown agent `{}`", agent.value),
                agent.span.clone(),
            )
            .with_help(if workflow.agents.is_empty() {
                "declare it under `agents:`".to_owned()
            } else {
                format!("the agents are {}", all_of(agent_names()))
            });
            diagnostic.label = did_you_mean(&agent.value, agent_names());
            diagnostics.push(diagnostic);
        }
    }
}

/// `fix` and `review` need the failure being repaired, so they only run in `repair:`; a
/// `review` needs a `fix` before it to have a patch to look at.
fn repair_steps(headers: &[StepHeader], diagnostics: &mut Vec<Diagnostic>) {
    let is_repair_kind = |kind: Option<&str>| matches!(kind, Some("fix" | "review"));
    for step in headers
        .iter()
        .filter(|step| step.phase != Phase::Repair && is_repair_kind(step.kind))
    {
        let (Some(id), Some(kind)) = (&step.id, step.kind) else {
            continue;
        };
        diagnostics.push(
            Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!("`{kind}` step `{}` outside `repair:`", id.value),
                id.span.clone(),
            )
            .with_help("`fix` and `review` steps repair a failure: move them under `repair:`"),
        );
    }
    let mut fix_seen = false;
    for step in headers.iter().filter(|step| step.phase == Phase::Repair) {
        match (step.kind, &step.id) {
            (Some("fix"), _) => fix_seen = true,
            (Some("review"), Some(id)) if !fix_seen => diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!("review step `{}` has no `fix` step before it", id.value),
                    id.span.clone(),
                )
                .with_help("a review judges the patch a `fix` step proposed: put a `fix` first"),
            ),
            _ => {}
        }
    }
}

/// A pull request delivers what a successful run fixed: it has nothing to deliver before the
/// loop has succeeded.
/// Kinds come from the headers, so a step whose body did not decode still counts.
fn delivery_steps(headers: &[StepHeader], diagnostics: &mut Vec<Diagnostic>) {
    for step in headers
        .iter()
        .filter(|step| step.phase != Phase::OnSuccess && step.kind == Some("pull_request"))
    {
        let Some(id) = &step.id else {
            continue;
        };
        diagnostics.push(
            Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!("`pull_request` step `{}` outside `on_success:`", id.value),
                id.span.clone(),
            )
            .with_help(
                "a pull request delivers a fix once the run succeeded: move it under `on_success:`",
            ),
        );
    }
}

/// Output names become pipeline variables (`$(agentorch.image)`): letters, digits and `_`.
fn output_names(root: &Node, diagnostics: &mut Vec<Diagnostic>) {
    let Some((_, outputs)) = root.get("outputs") else {
        return;
    };
    for (key, _) in outputs.as_map().unwrap_or_default() {
        if !is_variable_name(&key.name) {
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!("invalid output name `{}`", key.name),
                    key.span.clone(),
                )
                .with_help(
                    "an output name is letters, digits and `_`, not starting with a digit: it becomes a pipeline variable",
                ),
            );
        }
    }
}

/// Letters, digits and `_`, not starting with a digit: a name every shell, template and
/// pipeline accepts (`--var` names, output names).
pub(crate) fn is_variable_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A rollback's `deployment` must name a deploy step. Kinds come from the headers, so a deploy
/// step whose body did not decode still counts; a target that may be a step whose id or kind
/// is unknown is not reported.
fn rollback_targets(
    workflow: &Workflow,
    headers: &[StepHeader],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let deploy_ids = || {
        headers
            .iter()
            .filter_map(|step| match (&step.id, step.kind) {
                (Some(id), Some("deploy")) => Some(id.value.as_str()),
                _ => None,
            })
    };
    let may_be = |target: &str| {
        headers.iter().any(|step| match (&step.id, step.kind) {
            (None, None | Some("deploy")) => true,
            (Some(id), None) => id.value == target,
            _ => false,
        })
    };
    for step in workflow.all_steps() {
        if let StepKind::Rollback(config) = &step.kind
            && let Some(target) = &config.deployment
            && !deploy_ids().any(|id| id == target.value)
            && !may_be(&target.value)
        {
            let mut diagnostic = Diagnostic::new(
                DiagnosticKind::UnknownReference,
                format!("`{}` is not a deploy step", target.value),
                target.span.clone(),
            )
            .with_help(match deploy_ids().count() {
                0 => "the workflow has no deploy step".to_owned(),
                _ => format!("the deploy steps are {}", all_of(deploy_ids())),
            });
            diagnostic.label = did_you_mean(&target.value, deploy_ids());
            diagnostics.push(diagnostic);
        }
    }
}

/// A metric check's `baseline` is measured just before the run's first deploy step, so the
/// check must be in `steps:` after a deploy step (headers count deploys that did not decode).
fn metric_baselines(
    workflow: &Workflow,
    headers: &[StepHeader],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let main: Vec<&StepHeader> = headers
        .iter()
        .filter(|step| step.phase == Phase::Steps)
        .collect();
    let first_deploy = main.iter().position(|step| step.kind == Some("deploy"));
    for step in workflow.all_steps() {
        if !crate::workflow::step_config::verify::needs_baseline(step) {
            continue;
        }
        let position = main.iter().position(|header| {
            header
                .id
                .as_ref()
                .is_some_and(|id| id.value == step.id.value)
        });
        let after_a_deploy = matches!((first_deploy, position), (Some(d), Some(p)) if d < p);
        if !after_a_deploy {
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!(
                        "`baseline` of step `{}` needs a deploy step before it in `steps:`",
                        step.id.value
                    ),
                    step.id.span.clone(),
                )
                .with_help(
                    "the baseline is the same query measured just before the run's first deploy step",
                ),
            );
        }
    }
}

fn safety(workflow: &Workflow, root: &Node, diagnostics: &mut Vec<Diagnostic>) {
    let node = root.get("safety").map(|(_, node)| node);
    let span_of = |key: &str| {
        node.and_then(|n| n.get(key))
            .map_or_else(|| root.span.clone(), |(_, value)| value.span.clone())
    };
    let limits = [
        ("max_iterations", workflow.safety.max_iterations),
        (
            "no_progress_threshold",
            workflow.safety.no_progress_threshold,
        ),
    ];
    for (key, value) in limits {
        if value < 1 {
            diagnostics.push(Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!("`{key}` must be at least 1, found {value}"),
                span_of(key),
            ));
        }
    }
    let protect = workflow.safety.protect.iter().flatten();
    for glob in workflow.safety.never_delete.iter().chain(protect) {
        if let Err(err) = globset::Glob::new(&glob.value) {
            diagnostics.push(Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!("invalid glob `{}`: {}", glob.value, err.kind()),
                glob.span.clone(),
            ));
        }
    }
    for pattern in &workflow.safety.require_confirmation {
        let Some(expression) = pattern.value.strip_prefix("re:") else {
            continue;
        };
        if let Err(err) = regex::Regex::new(expression) {
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!("invalid regular expression `{expression}`"),
                    pattern.span.clone(),
                )
                // The last line of regex's message says what is wrong, without its caret.
                .with_help(
                    err.to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .trim_start_matches("error: ")
                        .to_owned(),
                ),
            );
        }
    }
}

/// `require_approval` guards production: `yes` (a string in YAML 1.2) must not read as false.
fn approvals(root: &Node, diagnostics: &mut Vec<Diagnostic>) {
    let Some((_, environments)) = root.get("environments") else {
        return;
    };
    for (_, environment) in environments.as_map().unwrap_or_default() {
        if let Some((_, value)) = environment.get("require_approval")
            && !matches!(value.value, Value::Bool(_))
        {
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!(
                        "`require_approval` must be `true` or `false`, found {}",
                        value.describe()
                    ),
                    value.span.clone(),
                )
                .with_help(
                    "only `true` and `false` are booleans: `yes`, `no`, `on` and `off` are strings",
                ),
            );
        }
    }
}

/// An environment's `aks` is free-form YAML like the rest of it, but deploy steps read it: the
/// same shape as a deploy step's `aks`, checked here so a typo is not a silent kubeconfig deploy.
fn environment_clusters(root: &Node, diagnostics: &mut Vec<Diagnostic>) {
    const KEYS: [&str; 4] = ["subscription", "resource_group", "cluster", "admin"];
    let Some((_, environments)) = root.get("environments") else {
        return;
    };
    for (_, environment) in environments.as_map().unwrap_or_default() {
        let Some((_, aks)) = environment.get("aks") else {
            continue;
        };
        let Some(entries) = aks.as_map() else {
            diagnostics.push(Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!(
                    "`aks` must be a mapping (`{{resource_group, cluster}}`), found {}",
                    aks.describe()
                ),
                aks.span.clone(),
            ));
            continue;
        };
        for (key, value) in entries {
            if !KEYS.contains(&key.name.as_str()) {
                diagnostics.push(
                    Diagnostic::new(
                        DiagnosticKind::UnknownKey,
                        format!("unknown key `{}` in `aks`", key.name),
                        key.span.clone(),
                    )
                    .with_help(format!(
                        "expected one of {}",
                        KEYS.map(|k| format!("`{k}`")).join(", ")
                    )),
                );
                continue;
            }
            let expected_bool = key.name == "admin";
            let fits = match &value.value {
                Value::Bool(_) => expected_bool,
                Value::String(_) => !expected_bool,
                _ => false,
            };
            if !fits {
                diagnostics.push(Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!(
                        "`aks.{}` must be {}, found {}",
                        key.name,
                        if expected_bool {
                            "`true` or `false`"
                        } else {
                            "a string"
                        },
                        value.describe()
                    ),
                    value.span.clone(),
                ));
            }
        }
        for required in ["resource_group", "cluster"] {
            if aks.get(required).is_none() {
                diagnostics.push(Diagnostic::new(
                    DiagnosticKind::MissingKey,
                    format!("`aks` needs `{required}`"),
                    aks.span.clone(),
                ));
            }
        }
    }
}

/// Checks every template statically: it must parse, and every variable it reads must exist
/// when it is rendered.
struct TemplateChecker<'a> {
    env: minijinja::Environment<'static>,
    workflow: &'a Workflow,
    step_ids: HashSet<&'a str>,
    /// Whether every step's id is known, so that `steps.<id>` can be checked.
    complete: bool,
    secrets: Vec<String>,
}

impl<'a> TemplateChecker<'a> {
    fn new(workflow: &'a Workflow, headers: &'a [StepHeader]) -> Self {
        let mut env = minijinja::Environment::new();
        env.add_filter("shell_quote", super::template::shell_quote);
        Self {
            env,
            workflow,
            step_ids: headers
                .iter()
                .filter_map(|s| Some(s.id.as_ref()?.value.as_str()))
                .collect(),
            complete: headers.iter().all(|s| s.id.is_some()),
            secrets: workflow
                .secrets
                .iter()
                .flat_map(|s| &s.names)
                .map(|name| secret_key(&name.value))
                .collect(),
        }
    }

    fn check_sites(&self, sites: &[TemplateSite], diagnostics: &mut Vec<Diagnostic>) {
        let mut scopes_checked = HashSet::new();
        for site in sites {
            let scope = site.scope.as_deref();
            for template in &site.templates {
                self.check(
                    template.source(),
                    template.span(),
                    scope,
                    false,
                    diagnostics,
                );
            }
            if let Some(condition) = &site.condition {
                self.check(
                    condition.source(),
                    condition.span(),
                    scope,
                    true,
                    diagnostics,
                );
            }
            // Parameter values are templates of their include site, checked once per include.
            let mut scope = site.scope.as_ref();
            while let Some(current) = scope {
                if !scopes_checked.insert(Arc::as_ptr(current)) {
                    break;
                }
                for parameter in current.parameters.values() {
                    for (text, span) in &parameter.strings {
                        self.check(text, span, current.parent.as_deref(), false, diagnostics);
                    }
                }
                scope = current.parent.as_ref();
            }
        }
    }

    fn check(
        &self,
        source: &str,
        span: &Span,
        scope: Option<&TemplateScope>,
        expression: bool,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let Some(variables) = self.variables(source, span, expression, diagnostics) else {
            return;
        };
        for variable in variables {
            if let Some(diagnostic) = self.undefined(&variable, scope) {
                diagnostics.push(Diagnostic {
                    span: span_within(span, &variable, source),
                    ..diagnostic
                });
            }
        }
    }

    /// The context variables a template reads, sorted; `None` when it does not parse (that
    /// is reported).
    fn variables(
        &self,
        source: &str,
        span: &Span,
        expression: bool,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Vec<String>> {
        let variables = if expression {
            self.env
                .compile_expression(source)
                .map(|expr| expr.undeclared_variables(true))
        } else {
            self.env
                .template_from_str(source)
                .map(|template| template.undeclared_variables(true))
        };
        let variables = match variables {
            Ok(variables) => variables,
            Err(err) => {
                let at = err
                    .range()
                    .and_then(|range| source.get(range))
                    .map_or_else(|| span.clone(), |text| span_within(span, text, source));
                diagnostics.push(Diagnostic::new(
                    DiagnosticKind::TemplateSyntax,
                    format!(
                        "invalid {}: {}",
                        if expression { "expression" } else { "template" },
                        err.detail().unwrap_or("syntax error")
                    ),
                    at,
                ));
                return None;
            }
        };
        // minijinja's global functions (`range`, `dict`, `namespace`) are not context values.
        let globals: HashSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        let mut variables: Vec<String> = variables
            .into_iter()
            .filter(|v| !globals.contains(v.split('.').next().unwrap_or(v)))
            .collect();
        variables.sort();
        Some(variables)
    }

    /// Environment values render when the run starts, from `vars`, `ado` and their own
    /// environment's values: anything else is undefined, and so is reading in a cycle.
    fn check_environments(&self, sites: &[EnvironmentSite], diagnostics: &mut Vec<Diagnostic>) {
        for site in sites {
            let values = self.workflow.environments.value.get(&site.environment);
            for template in &site.templates {
                let (source, span) = (template.source(), template.span());
                let Some(variables) = self.variables(source, span, false, diagnostics) else {
                    continue;
                };
                for variable in variables {
                    let mut parts = variable.splitn(3, '.');
                    let (root, field) = (parts.next().unwrap_or_default(), parts.next());
                    let diagnostic = match (root, field) {
                        ("vars" | "ado", _) => self.undefined(&variable, None),
                        ("env", None) => None,
                        ("env", Some(field)) => values.and_then(|values| {
                            let mut known: Vec<&str> = vec!["name"];
                            known.extend(values.0.keys().map(String::as_str));
                            (!known.contains(&field)).then(|| {
                                self.missing(&variable, "environment's values", field, known)
                            })
                        }),
                        (root, _)
                            if CONTEXT_ROOTS.contains(&root) || STEP_KIND_ROOTS.contains(&root) =>
                        {
                            Some(
                                Diagnostic::new(
                                    DiagnosticKind::UndefinedVariable,
                                    format!("`{root}` cannot be used in an environment value"),
                                    Span::detached(),
                                )
                                .with_help(ENVIRONMENT_HELP),
                            )
                        }
                        (root, _) => Some(self.missing(
                            &variable,
                            "roots an environment value may read",
                            root,
                            ENVIRONMENT_ROOTS.to_vec(),
                        )),
                    };
                    if let Some(diagnostic) = diagnostic {
                        diagnostics.push(Diagnostic {
                            span: span_within(span, &variable, source),
                            ..diagnostic
                        });
                    }
                }
            }
        }
        for (name, values) in &self.workflow.environments.value {
            let Err(keys) = dependency_order::order(&environment::dependencies(values)) else {
                continue;
            };
            // Point at the first value of the cycle.
            let Some(span) = sites
                .iter()
                .find(|site| site.environment == *name && keys.first() == Some(&site.key))
                .and_then(|site| site.templates.first())
                .map(|template| template.span().clone())
            else {
                continue;
            };
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::EnvironmentCycle,
                    format!(
                        "the values of environment `{name}` refer to each other in a cycle: {}",
                        environment::chain(&keys)
                    ),
                    span,
                )
                .with_help(
                    "an environment value may read the others, but never itself through them",
                ),
            );
        }
    }

    /// An undefined-variable diagnostic (without its span): `wrong` is the part of `variable`
    /// that does not exist, `known` what does.
    fn missing(&self, variable: &str, what: &str, wrong: &str, known: Vec<&str>) -> Diagnostic {
        let help = if known.is_empty() {
            format!("there are no {what}")
        } else {
            format!("the {what} are {}", all_of(known.iter().copied()))
        };
        let mut diagnostic = Diagnostic::new(
            DiagnosticKind::UndefinedVariable,
            format!("undefined variable `{variable}`"),
            Span::detached(),
        )
        .with_help(help);
        diagnostic.label = did_you_mean(wrong, known);
        diagnostic
    }

    /// A diagnostic (without its span) when `variable` will not exist at render time.
    fn undefined(&self, variable: &str, scope: Option<&TemplateScope>) -> Option<Diagnostic> {
        let parts: Vec<&str> = variable.split('.').collect();
        let (root, field, subfield) = (parts[0], parts.get(1).copied(), parts.get(2).copied());
        // `wrong` is the part of the path that does not exist; suggestions are for it.
        let undefined = |help: String, wrong: &str, candidates: Vec<&str>| {
            let mut diagnostic = Diagnostic::new(
                DiagnosticKind::UndefinedVariable,
                format!("undefined variable `{variable}`"),
                Span::detached(),
            )
            .with_help(help);
            diagnostic.label = did_you_mean(wrong, candidates);
            Some(diagnostic)
        };
        let missing = |what: &str, wrong: &str, known: Vec<&str>| {
            Some(self.missing(variable, what, wrong, known))
        };
        match (root, field) {
            (root, _) if !CONTEXT_ROOTS.contains(&root) && !STEP_KIND_ROOTS.contains(&root) => {
                missing("template roots", root, CONTEXT_ROOTS.to_vec())
            }
            ("ado", _) | ("vars" | "steps" | "run" | "secrets", None) => None,
            (root, _) if STEP_KIND_ROOTS.contains(&root) => None,
            ("vars", Some(name)) => (!self.workflow.vars.contains_key(name))
                .then(|| {
                    missing(
                        "vars",
                        name,
                        self.workflow.vars.keys().map(String::as_str).collect(),
                    )
                })
                .flatten(),
            ("env", field) => match self.workflow.environment_values() {
                // The environment selection failed and is reported already.
                None if !self.workflow.environments.value.is_empty() => None,
                None => undefined(
                    "the workflow declares no `environments`".into(),
                    root,
                    Vec::new(),
                ),
                Some((_, values)) => {
                    let name = field?;
                    let mut known: Vec<&str> = vec!["name"];
                    known.extend(values.0.keys().map(String::as_str));
                    (!known.contains(&name))
                        .then(|| missing("environment's values", name, known))
                        .flatten()
                }
            },
            ("steps", Some(_)) if !self.complete => None,
            ("steps", Some(id)) => {
                if !self.step_ids.contains(id) {
                    let mut ids: Vec<&str> = self.step_ids.iter().copied().collect();
                    ids.sort_unstable();
                    return missing("step ids", id, ids);
                }
                match subfield {
                    Some(sub) if !STEP_FIELDS.contains(&sub) => {
                        missing("fields of a step", sub, STEP_FIELDS.to_vec())
                    }
                    _ => None,
                }
            }
            ("run", Some(name)) => (!RUN_FIELDS.contains(&name))
                .then(|| missing("fields of `run`", name, RUN_FIELDS.to_vec()))
                .flatten(),
            ("secrets", Some(name)) => (!self.secrets.iter().any(|s| s == name))
                .then(|| {
                    missing(
                        "secrets",
                        name,
                        self.secrets.iter().map(String::as_str).collect(),
                    )
                })
                .flatten(),
            ("parameters", field) => match scope {
                None => undefined(
                    "`parameters` exists only in steps included from a template".into(),
                    root,
                    Vec::new(),
                ),
                Some(scope) => {
                    let name = field?;
                    (!scope.parameters.contains_key(name))
                        .then(|| {
                            missing(
                                "template's parameters",
                                name,
                                scope.parameters.keys().map(String::as_str).collect(),
                            )
                        })
                        .flatten()
                }
            },
            _ => None,
        }
    }
}

const ENVIRONMENT_HELP: &str = "environment values render when the run starts: they may read \
     `vars`, `ado` and the environment's other values (`env.<key>`)";

/// The span of `needle` inside a template's value, searched in the lines the value spans
/// (a block scalar's text starts on the line after its `|`); otherwise the whole value.
pub(crate) fn span_within(span: &Span, needle: &str, source: &str) -> Span {
    let found = span.file.as_ref().and_then(|file| {
        let lines = source.lines().count() + 1;
        (span.line..span.line + lines).find_map(|number| {
            let line = file.line(number)?;
            let skip = if number == span.line {
                span.column.saturating_sub(1)
            } else {
                0
            };
            let rest: String = line.chars().skip(skip).collect();
            let offset = rest.find(needle)?;
            Some(Span {
                file: Some(Arc::clone(file)),
                line: number,
                column: skip + 1 + rest[..offset].chars().count(),
                len: needle.chars().count(),
            })
        })
    });
    found.unwrap_or_else(|| span.clone())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::workflow::{DiagnosticKind, LoadOptions, load};

    fn load_text(
        text: &str,
    ) -> Result<crate::workflow::model::Workflow, crate::workflow::Diagnostics> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.yaml");
        std::fs::write(&path, text).expect("write");
        load(Path::new(&path), &LoadOptions::default())
    }

    #[test]
    fn loop_variables_and_global_functions_are_not_undefined() {
        let loaded = load_text(
            "name: w\nvars: {hosts: [a, b]}\nsteps:\n  - id: ping\n    gate: \"{% for h in vars.hosts %}ping {{ h }} {{ loop.index }}; {% endfor %}{% for i in range(2) %}{{ i }}{% endfor %}\"\n",
        );
        assert!(
            loaded.is_ok(),
            "{}",
            loaded.err().map(|d| d.render(false)).unwrap_or_default()
        );
    }

    #[test]
    fn undefined_variables_in_block_scalars_point_at_their_line() {
        let diagnostics = load_text(
            "name: w\nsteps:\n  - id: build\n    gate: |\n      make\n      echo {{ vars.nope }}\n",
        )
        .expect_err("undefined");
        let found: Vec<(usize, usize, usize)> = diagnostics
            .iter()
            .map(|d| (d.span.line, d.span.column, d.span.len))
            .collect();
        assert_eq!(found, [(6, 15, 9)], "{}", diagnostics.render(false));
    }

    #[test]
    fn repair_steps_belong_in_repair_after_a_fix() {
        let diagnostics = load_text(
            "name: w\nagents: {a: {model: m}}\nsteps:\n  - {id: early, fix: {agent: a}}\nrepair:\n  - {id: judge, review: {agent: a}}\n  - {id: propose, fix: {agent: a}}\n",
        )
        .expect_err("misplaced");
        let found: Vec<(usize, String)> = diagnostics
            .iter()
            .map(|d| (d.span.line, d.message.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (4, "`fix` step `early` outside `repair:`".to_owned()),
                (
                    6,
                    "review step `judge` has no `fix` step before it".to_owned()
                ),
            ],
            "{}",
            diagnostics.render(false)
        );
    }

    #[test]
    fn a_metric_baseline_needs_a_deploy_step_before_it() {
        let check =
            "verify: {prometheus: {url: http://p:9090, query: up, baseline: {tolerance: 0.1}}}";
        let diagnostics = load_text(&format!(
            "name: w\nsteps:\n  - id: early\n    {check}\n  - id: ship\n    deploy: {{manifests: [k.yaml]}}\n"
        ))
        .expect_err("no deploy before");
        let found: Vec<(usize, String)> = diagnostics
            .iter()
            .map(|d| (d.span.line, d.message.clone()))
            .collect();
        assert_eq!(
            found,
            [(
                3,
                "`baseline` of step `early` needs a deploy step before it in `steps:`".to_owned()
            )],
            "{}",
            diagnostics.render(false)
        );
        let loaded = load_text(&format!(
            "name: w\nsteps:\n  - id: ship\n    deploy: {{manifests: [k.yaml]}}\n  - id: late\n    {check}\n"
        ));
        assert!(
            loaded.is_ok(),
            "{}",
            loaded.err().map(|d| d.render(false)).unwrap_or_default()
        );
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let diagnostics = load_text(
            "name: w\nsteps:\n  - {id: a, gate: \"{{ vars.x }} {{ env.y }}\", timeout: soon}\n  - {id: a, gat: x}\n",
        )
        .expect_err("broken");
        let kinds: Vec<DiagnosticKind> = diagnostics.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [
                DiagnosticKind::UndefinedVariable,
                DiagnosticKind::UndefinedVariable,
                DiagnosticKind::InvalidValue,
                // The first `a` did not decode (its timeout), yet it still owns the id.
                DiagnosticKind::DuplicateId,
                DiagnosticKind::UnknownStepKind,
            ],
            "{}",
            diagnostics.render(false)
        );
    }

    #[test]
    fn steps_that_did_not_decode_still_count_for_references() {
        // `deploy` did not decode (its manifests are not a list), `build` neither: the
        // rollback's target and `steps.build` are still known, and `missing` is still unknown.
        let diagnostics = load_text(
            "name: w
steps:
  - {id: deploy, deploy: {manifests: 3}}
  - {id: build, gate: x, retries: many}
  - {id: use, gate: \"{{ steps.build.status }} {{ steps.missing.status }}\"}
on_give_up:
  - {id: undo, rollback: {deployment: deploy}}
  - {id: again, rollback: {deployment: deplyo}}
",
        )
        .expect_err("broken");
        let found: Vec<(usize, DiagnosticKind)> =
            diagnostics.iter().map(|d| (d.span.line, d.kind)).collect();
        assert_eq!(
            found,
            [
                (3, DiagnosticKind::InvalidValue),
                (4, DiagnosticKind::InvalidValue),
                (5, DiagnosticKind::UndefinedVariable),
                (8, DiagnosticKind::UnknownReference),
            ],
            "{}",
            diagnostics.render(false)
        );
    }

    #[test]
    fn template_syntax_that_is_never_rendered_is_an_error() {
        let diagnostics = load_text(concat!(
            "name: \"deploy {{ env.name }}\"\n",
            "vars: {image: \"app:{{ ado.build_id }}\"}\n",
            "agents: {a: {model: \"{{ vars.model }}\", api_key: \"{{ vars.image }}\"}}\n",
            "steps:\n",
            "  - id: check\n",
            "    name: \"check {{ vars.image }}\"\n",
            "    verify:\n",
            "      flow:\n",
            "        requests:\n",
            "          - name: login\n",
            "            url: \"http://x/{{ vars.image }}\"\n",
            "            json: {user: \"{{ vars.image }}\", \"{{ vars.image }}\": 1}\n",
            "            capture: {token: {header: \"X-{{ vars.image }}\"}}\n",
        ))
        .expect_err("unrendered");
        let found: Vec<(usize, usize, DiagnosticKind)> = diagnostics
            .iter()
            .map(|d| (d.span.line, d.span.column, d.kind))
            .collect();
        let unrendered = DiagnosticKind::UnrenderedTemplate;
        assert_eq!(
            found,
            [
                (1, 7, unrendered),
                (2, 15, unrendered),
                (3, 21, unrendered),
                (6, 11, unrendered),
                (12, 46, unrendered),
                (13, 39, unrendered),
            ],
            "{}",
            diagnostics.render(false)
        );
    }
}
