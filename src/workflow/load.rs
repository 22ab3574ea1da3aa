//! Loading: parse → expand templates → decode → select the environment → validate.

use std::path::Path;

use super::decode::Decoder;
use super::diagnostic::{Diagnostic, DiagnosticKind, Diagnostics, all_of, did_you_mean, one_of};
use super::expand::{Expander, find_file, lookup_candidates, project_root};
use super::model::{Phase, Workflow};
use super::node::{Key, Node, Value, parse};
use super::span::{SourceFile, Span};
use super::template::has_template_syntax;
use super::validate::{is_variable_name, validate};

/// What the command line adds to a workflow file.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--env NAME`: the environment to run against. May be omitted when there is only one.
    pub environment: Option<String>,
    /// `--var NAME=VALUE`, in order: each overrides (or adds) `vars.NAME`, as a string.
    pub vars: Vec<(String, String)>,
    /// With no `environment` given, check the workflow against each of its environments
    /// instead of asking for one (what `validate` does; a run needs one).
    pub every_environment: bool,
}

/// Loads a workflow: parses it, expands its templates, decodes and validates it.
///
/// Either the workflow is sound, or every problem found is returned, sorted by position.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Workflow, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Diagnostic::new(
            DiagnosticKind::Io,
            format!("failed to read workflow `{}`: {err}", path.display()),
            Span::detached(),
        )
    })?;
    let file = SourceFile::new(path, text);
    let root = parse(&file).map_err(|diagnostic| Diagnostics::from(*diagnostic))?;
    let project_root = project_root(path);

    let mut expander = Expander::new(path, &project_root);
    let lists = Phase::ALL.map(|phase| match root.get(phase.key()) {
        Some((_, list)) => expander.expand_list(list, None),
        None => Vec::new(),
    });
    let mut diagnostics = expander.diagnostics;
    let templates = expander.files;

    let mut decoder = Decoder::new();
    let (mut workflow, decoded) = decoder.workflow(&root, lists);
    diagnostics.extend(decoder.diagnostics);
    workflow.path = path.to_path_buf();
    workflow.templates = templates;
    workflow.project_root = project_root;

    override_vars(&mut workflow, &options.vars, &mut diagnostics);
    find_prompts(&mut workflow, &mut diagnostics);
    let each: Vec<String> = workflow.environments.value.keys().cloned().collect();
    if options.every_environment && options.environment.is_none() && each.len() > 1 {
        let mut found = Vec::new();
        for name in each {
            workflow.environment = Some(name);
            for diagnostic in validate(&workflow, &decoded, &root) {
                // The same mistake seen through several environments is one mistake.
                if !found.contains(&diagnostic) {
                    found.push(diagnostic);
                }
            }
        }
        workflow.environment = None;
        diagnostics.extend(found);
    } else {
        workflow.environment = select_environment(&workflow, options, &mut diagnostics);
        diagnostics.extend(validate(&workflow, &decoded, &root));
    }
    if diagnostics.is_empty() {
        Ok(workflow)
    } else {
        let mut diagnostics = Diagnostics(diagnostics);
        diagnostics.sort();
        Err(diagnostics)
    }
}

fn override_vars(
    workflow: &mut Workflow,
    vars: &[(String, String)],
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (name, value) in vars {
        if is_variable_name(name) {
            workflow.vars.insert(name.clone(), value.clone().into());
            show_var_override(&mut workflow.expanded.0, name, value);
        } else {
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::InvalidVar,
                    format!("invalid `--var` name `{name}`"),
                    Span::detached(),
                )
                .with_help("a var name is letters, digits and `_`, not starting with a digit"),
            );
        }
        // A var is a value that templates read; its own `{{` would be passed on as text.
        if has_template_syntax(value) {
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::InvalidVar,
                    format!("`--var {name}` uses template syntax, but vars are not rendered"),
                    Span::detached(),
                )
                .with_help("give the value itself; templates read vars, vars are not templates"),
            );
        }
    }
}

/// Makes `plan` show the value a `--var` gave, in place of the written one.
fn show_var_override(root: &mut Node, name: &str, value: &str) {
    let Value::Map(entries) = &mut root.value else {
        return;
    };
    let key = |name: &str| Key {
        name: name.to_owned(),
        span: Span::detached(),
    };
    let value = Node::new(Value::String(value.to_owned()), Span::detached());
    if !entries.iter().any(|(k, _)| k.name == "vars") {
        entries.push((key("vars"), Node::new(Value::Null, Span::detached())));
    }
    let Some((_, vars)) = entries.iter_mut().find(|(k, _)| k.name == "vars") else {
        return;
    };
    if let Value::Null = vars.value {
        vars.value = Value::Map(Vec::new());
    }
    if let Value::Map(vars) = &mut vars.value {
        match vars.iter_mut().find(|(k, _)| k.name == name) {
            Some((_, existing)) => *existing = value,
            None => vars.push((key(name), value)),
        }
    }
}

fn select_environment(
    workflow: &Workflow,
    options: &LoadOptions,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    let environments = &workflow.environments;
    let names = || environments.value.keys().map(String::as_str);
    match &options.environment {
        Some(name) if environments.value.contains_key(name) => Some(name.clone()),
        Some(name) => {
            // Point at `environments:`; without one, `--env` has no place in the file.
            let span = if environments.value.is_empty() {
                Span::detached()
            } else {
                environments.span.clone()
            };
            let mut diagnostic = Diagnostic::new(
                DiagnosticKind::UnknownReference,
                format!("unknown environment `{name}`"),
                span,
            )
            .with_help(if environments.value.is_empty() {
                "the workflow declares no `environments`".to_owned()
            } else {
                format!("the environments are {}", all_of(names()))
            });
            diagnostic.label = did_you_mean(name, names());
            diagnostics.push(diagnostic);
            None
        }
        None => match environments.value.len() {
            0 => None,
            1 => names().next().map(str::to_owned),
            _ => {
                diagnostics.push(
                    Diagnostic::new(
                        DiagnosticKind::MissingEnvironment,
                        "no environment selected",
                        environments.span.clone(),
                    )
                    .with_help(format!("choose one with `--env`: {}", one_of(names()))),
                );
                None
            }
        },
    }
}

/// Agents' prompt files are looked up like template files (see `expand`).
fn find_prompts(workflow: &mut Workflow, diagnostics: &mut Vec<Diagnostic>) {
    let dir = workflow.dir().to_path_buf();
    for agent in workflow.agents.values_mut() {
        let Some(prompt) = &agent.prompt else {
            continue;
        };
        agent.prompt_path = find_file(&prompt.value, &dir, &workflow.project_root);
        if let Some(path) = &agent.prompt_path {
            if let Some(problem) = prompt_problem(path) {
                diagnostics.push(Diagnostic::new(
                    DiagnosticKind::TemplateSyntax,
                    format!("invalid prompt template `{}`: {problem}", path.display()),
                    prompt.span.clone(),
                ));
            }
        } else {
            let looked_in: Vec<String> =
                lookup_candidates(&prompt.value, &dir, &workflow.project_root)
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::TemplateNotFound,
                    format!("prompt file `{}` not found", prompt.value),
                    prompt.span.clone(),
                )
                .with_help(format!(
                    "looked in {}",
                    all_of(looked_in.iter().map(String::as_str))
                )),
            );
        }
    }
}

/// Why a prompt file cannot be used, if it cannot: unreadable, or not a valid minijinja template.
/// Its variables are the fix/review step's business; only its syntax is checked here.
fn prompt_problem(path: &Path) -> Option<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => return Some(format!("failed to read it: {err}")),
    };
    let env = minijinja::Environment::new();
    let err = env.template_from_str(&text).err()?;
    let detail = err.detail().unwrap_or("syntax error");
    Some(match err.line() {
        Some(line) => format!("{detail} (line {line})"),
        None => detail.to_owned(),
    })
}
