//! Semantic checks on a decoded workflow: references, ids, limits and every template's variables.
//!
//! All checks run and all problems are reported, each pointing at the node it is about.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::decode::TemplateSite;
use super::diagnostic::{Diagnostic, DiagnosticKind, all_of, did_you_mean};
use super::expand::TemplateScope;
use super::model::{StepKind, Workflow};
use super::node::{Node, Value};
use super::span::Span;
use super::template::{CONTEXT_ROOTS, RUN_FIELDS, STEP_FIELDS, STEP_KIND_ROOTS, secret_key};

/// `complete` is false when some steps did not decode: references to steps are then not
/// checked, since the step referred to may be one of those.
pub(crate) fn validate(
    workflow: &Workflow,
    sites: &[TemplateSite],
    root: &Node,
    complete: bool,
) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    step_ids(workflow, &mut diagnostics);
    agents(workflow, &mut diagnostics);
    repair_steps(workflow, &mut diagnostics);
    if complete {
        rollback_targets(workflow, &mut diagnostics);
    }
    safety(workflow, root, &mut diagnostics);
    approvals(root, &mut diagnostics);
    let checker = TemplateChecker::new(workflow, complete);
    checker.check_sites(sites, &mut diagnostics);
    diagnostics
}

fn step_ids(workflow: &Workflow, diagnostics: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &Span> = HashMap::new();
    for step in workflow.all_steps() {
        match seen.get(step.id.value.as_str()) {
            Some(first) => diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::DuplicateId,
                    format!("duplicate step id `{}`", step.id.value),
                    step.id.span.clone(),
                )
                .with_note(
                    format!("`{}` is first defined here", step.id.value),
                    Some((*first).clone()),
                )
                .with_help("step ids must be unique across `steps`, `repair` and `on_give_up`"),
            ),
            None => {
                seen.insert(&step.id.value, &step.id.span);
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
fn repair_steps(workflow: &Workflow, diagnostics: &mut Vec<Diagnostic>) {
    let is_repair_kind = |kind: &StepKind| matches!(kind, StepKind::Fix(_) | StepKind::Review(_));
    for step in workflow
        .steps
        .iter()
        .chain(&workflow.on_give_up)
        .filter(|step| is_repair_kind(&step.kind))
    {
        diagnostics.push(
            Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!(
                    "`{}` step `{}` outside `repair:`",
                    step.kind.key(),
                    step.id.value
                ),
                step.id.span.clone(),
            )
            .with_help("`fix` and `review` steps repair a failure: move them under `repair:`"),
        );
    }
    let mut fix_seen = false;
    for step in &workflow.repair {
        match step.kind {
            StepKind::Fix(_) => fix_seen = true,
            StepKind::Review(_) if !fix_seen => diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!(
                        "review step `{}` has no `fix` step before it",
                        step.id.value
                    ),
                    step.id.span.clone(),
                )
                .with_help("a review judges the patch a `fix` step proposed: put a `fix` first"),
            ),
            _ => {}
        }
    }
}

fn rollback_targets(workflow: &Workflow, diagnostics: &mut Vec<Diagnostic>) {
    let deploy_ids = || {
        workflow.all_steps().filter_map(|step| match step.kind {
            StepKind::Deploy(_) => Some(step.id.value.as_str()),
            _ => None,
        })
    };
    for step in workflow.all_steps() {
        if let StepKind::Rollback(config) = &step.kind
            && let Some(target) = &config.deployment
            && !deploy_ids().any(|id| id == target.value)
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
    for glob in &workflow.safety.never_delete {
        if let Err(err) = globset::Glob::new(&glob.value) {
            diagnostics.push(Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!("invalid glob `{}`: {}", glob.value, err.kind()),
                glob.span.clone(),
            ));
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

/// Checks every template statically: it must parse, and every variable it reads must exist
/// when it is rendered.
struct TemplateChecker<'a> {
    env: minijinja::Environment<'static>,
    workflow: &'a Workflow,
    step_ids: HashSet<&'a str>,
    /// Whether every step decoded, so that `steps.<id>` can be checked.
    complete: bool,
    secrets: Vec<String>,
}

impl<'a> TemplateChecker<'a> {
    fn new(workflow: &'a Workflow, complete: bool) -> Self {
        let mut env = minijinja::Environment::new();
        env.add_filter("shell_quote", super::template::shell_quote);
        Self {
            env,
            workflow,
            step_ids: workflow.all_steps().map(|s| s.id.value.as_str()).collect(),
            complete,
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
                return;
            }
        };
        // minijinja's global functions (`range`, `dict`, `namespace`) are not context values.
        let globals: HashSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        let mut variables: Vec<String> = variables
            .into_iter()
            .filter(|v| !globals.contains(v.split('.').next().unwrap_or(v)))
            .collect();
        variables.sort();
        for variable in variables {
            if let Some(diagnostic) = self.undefined(&variable, scope) {
                diagnostics.push(Diagnostic {
                    span: span_within(span, &variable, source),
                    ..diagnostic
                });
            }
        }
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
            let help = if known.is_empty() {
                format!("there are no {what}")
            } else {
                format!("the {what} are {}", all_of(known.iter().copied()))
            };
            undefined(help, wrong, known)
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
                DiagnosticKind::UnknownStepKind,
            ],
            "{}",
            diagnostics.render(false)
        );
    }
}
