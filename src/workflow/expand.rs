//! Template expansion: `- template: file.yaml` items replaced by the steps of that file.
//!
//! A template file has two keys:
//!
//! ```yaml
//! parameters:            # the names it accepts
//!   base:                # no default: the includer must give it
//!   retries: {default: 3}
//! steps:
//!   - id: login
//!     verify: {http: {url: "{{ parameters.base }}/login"}}
//! ```
//!
//! and is included with `- template: templates/user-flows.yaml` and `parameters: {base: ...}`.
//! Expansion happens on the node tree, before decoding, so included steps keep spans that point
//! into the template file. `{{ parameters.x }}` stays lazy: each included step carries a
//! [`TemplateScope`] with the values bound at its include site, rendered when the step runs.
//!
//! # Where a template path is looked up
//!
//! A relative `template:` path is tried, in order:
//! 1. relative to the directory of the file that includes it;
//! 2. relative to the project root: the nearest ancestor of the workflow file that contains
//!    `.git`, or the current directory when there is none;
//! 3. relative to `<project root>/templates/`.
//!
//! An absolute path is used as it is. Templates may include templates; a file that includes
//! itself, directly or through others, is an error naming the whole chain.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::diagnostic::{Diagnostic, DiagnosticKind, all_of, did_you_mean};
use super::node::{Key, Node, Value, parse};
use super::span::{SourceFile, Span};

/// The template a step was included from, with the parameter values bound at the include site.
#[derive(Clone, Debug)]
pub struct TemplateScope {
    /// The template file, as found.
    pub path: PathBuf,
    /// The `template:` value that included it.
    pub included_at: Span,
    /// Every parameter the template declares, with the value given or its default.
    pub parameters: IndexMap<String, ParameterValue>,
    /// The scope of the include site, when it is itself inside a template: the values above
    /// may refer to its `parameters`.
    pub parent: Option<Arc<TemplateScope>>,
}

/// A bound parameter value. Its strings are templates of the include site, rendered lazily.
#[derive(Clone, Debug)]
pub struct ParameterValue {
    pub value: serde_json::Value,
    /// The value as written, for `plan`.
    pub(crate) node: Node,
    /// Where the value was written (the include site, or the default in the template file).
    pub span: Span,
    /// Every string inside the value, with its span, for the static template check.
    pub(crate) strings: Vec<(String, Span)>,
}

/// A step node after expansion, with the template scope it was included under.
#[derive(Clone, Debug)]
pub(crate) struct ExpandedStep {
    pub(crate) node: Node,
    pub(crate) scope: Option<Arc<TemplateScope>>,
}

/// Finds template files and remembers which ones are being expanded, to catch cycles.
pub(crate) struct Expander<'a> {
    project_root: &'a Path,
    /// The chain of template files being expanded: (canonical path, path as shown).
    chain: Vec<(PathBuf, PathBuf)>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Every template file read, in the order first read.
    pub(crate) files: Vec<PathBuf>,
}

const INCLUDE_KEYS: [&str; 2] = ["template", "parameters"];
const TEMPLATE_FILE_KEYS: [&str; 2] = ["parameters", "steps"];

impl<'a> Expander<'a> {
    pub(crate) fn new(workflow_path: &Path, project_root: &'a Path) -> Self {
        let canonical = workflow_path
            .canonicalize()
            .unwrap_or_else(|_| workflow_path.to_path_buf());
        Self {
            project_root,
            chain: vec![(canonical, workflow_path.to_path_buf())],
            diagnostics: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Expands a `steps:`/`repair:`/`on_give_up:` list (or a template file's `steps:`); the
    /// steps get `scope`, the scope of the file the list is written in.
    pub(crate) fn expand_list(
        &mut self,
        list: &Node,
        scope: Option<&Arc<TemplateScope>>,
    ) -> Vec<ExpandedStep> {
        let items = match &list.value {
            Value::Seq(items) => items.as_slice(),
            Value::Null => &[],
            _ => {
                self.diagnostics.push(Diagnostic::new(
                    DiagnosticKind::InvalidValue,
                    format!("expected a list of steps, found {}", list.describe()),
                    list.span.clone(),
                ));
                return Vec::new();
            }
        };
        let mut steps = Vec::new();
        for item in items {
            match item.get("template") {
                Some((key, path)) => {
                    if let Some(expanded) = self.include(item, key, path, scope) {
                        steps.extend(expanded);
                    }
                }
                None => steps.push(ExpandedStep {
                    node: item.clone(),
                    scope: scope.cloned(),
                }),
            }
        }
        steps
    }

    fn include(
        &mut self,
        item: &Node,
        template_key: &Key,
        path_node: &Node,
        scope: Option<&Arc<TemplateScope>>,
    ) -> Option<Vec<ExpandedStep>> {
        let mut ok = true;
        for (key, _) in item.as_map().unwrap_or_default() {
            if !INCLUDE_KEYS.contains(&key.name.as_str()) {
                let mut diagnostic = Diagnostic::new(
                    DiagnosticKind::UnknownKey,
                    format!("unknown key `{}` in template include", key.name),
                    key.span.clone(),
                )
                .with_help("a template include has only `template` and `parameters`");
                diagnostic.label = did_you_mean(&key.name, INCLUDE_KEYS);
                self.diagnostics.push(diagnostic);
                ok = false;
            }
        }
        let Some(written) = path_node.as_str() else {
            self.diagnostics.push(Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!(
                    "expected a template file path, found {}",
                    path_node.describe()
                ),
                path_node.span.clone(),
            ));
            return None;
        };
        let includer_dir = path_node
            .span
            .path()
            .and_then(Path::parent)
            .unwrap_or(Path::new(""));
        let Some(found) = find_file(written, includer_dir, self.project_root) else {
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::TemplateNotFound,
                    format!("template file `{written}` not found"),
                    path_node.span.clone(),
                )
                .with_help(format!(
                    "looked in {}",
                    all_of(
                        lookup_candidates(written, includer_dir, self.project_root)
                            .iter()
                            .map(|p| p.to_str().unwrap_or("?"))
                    )
                )),
            );
            return None;
        };
        let canonical = found.canonicalize().unwrap_or_else(|_| found.clone());
        if let Some(start) = self.chain.iter().position(|(c, _)| *c == canonical) {
            let chain: Vec<String> = self.chain[start..]
                .iter()
                .map(|(_, shown)| format!("`{}`", shown.display()))
                .chain([format!("`{}`", found.display())])
                .collect();
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticKind::TemplateCycle,
                    format!("template `{written}` includes itself"),
                    path_node.span.clone(),
                )
                .with_note(format!("the chain is {}", chain.join(" -> ")), None),
            );
            return None;
        }
        let text = match std::fs::read_to_string(&found) {
            Ok(text) => text,
            Err(err) => {
                self.diagnostics.push(Diagnostic::new(
                    DiagnosticKind::Io,
                    format!("failed to read template `{}`: {err}", found.display()),
                    path_node.span.clone(),
                ));
                return None;
            }
        };
        if !self.files.contains(&found) {
            self.files.push(found.clone());
        }
        let file = SourceFile::new(&found, text);
        let root = match parse(&file) {
            Ok(root) => root,
            Err(diagnostic) => {
                self.diagnostics.push(*diagnostic);
                return None;
            }
        };
        let Some(entries) = root.as_map() else {
            self.diagnostics.push(Diagnostic::new(
                DiagnosticKind::InvalidValue,
                format!(
                    "expected a template file (a mapping with `parameters` and `steps`), found {}",
                    root.describe()
                ),
                root.span.clone(),
            ));
            return None;
        };
        for (key, _) in entries {
            if !TEMPLATE_FILE_KEYS.contains(&key.name.as_str()) {
                let mut diagnostic = Diagnostic::new(
                    DiagnosticKind::UnknownKey,
                    format!("unknown key `{}` in template file", key.name),
                    key.span.clone(),
                )
                .with_help("a template file has only `parameters` and `steps`");
                diagnostic.label = did_you_mean(&key.name, TEMPLATE_FILE_KEYS);
                self.diagnostics.push(diagnostic);
            }
        }
        let declared = self.declared_parameters(root.get("parameters").map(|(_, n)| n));
        let given = item.get("parameters").map(|(_, n)| n);
        let parameters = self.bind_parameters(&declared, given, template_key, written);
        let new_scope = Arc::new(TemplateScope {
            path: found.clone(),
            included_at: path_node.span.clone(),
            parameters: parameters?,
            parent: scope.cloned(),
        });
        let Some((_, steps)) = root.get("steps") else {
            self.diagnostics.push(Diagnostic::new(
                DiagnosticKind::MissingKey,
                "missing key `steps` in template file",
                root.span.clone(),
            ));
            return None;
        };
        self.chain.push((canonical, found));
        let expanded = self.expand_list(steps, Some(&new_scope));
        self.chain.pop();
        ok.then_some(expanded)
    }

    /// The template's `parameters:` mapping: name -> default (None: the includer must give it).
    fn declared_parameters(&mut self, node: Option<&Node>) -> Vec<(Key, Option<Node>)> {
        let Some(node) = node else {
            return Vec::new();
        };
        let Some(entries) = node.as_map() else {
            if node.value != Value::Null {
                self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticKind::InvalidValue,
                        format!(
                            "expected a mapping of parameter names, found {}",
                            node.describe()
                        ),
                        node.span.clone(),
                    )
                    .with_help("write `parameters: {name: , other: {default: value}}`"),
                );
            }
            return Vec::new();
        };
        let mut declared = Vec::new();
        for (key, spec) in entries {
            match &spec.value {
                Value::Null => declared.push((key.clone(), None)),
                Value::Map(fields) => {
                    let mut default = None;
                    for (field, value) in fields {
                        match field.name.as_str() {
                            "default" => default = Some(value.clone()),
                            "description" => {}
                            other => {
                                let mut diagnostic = Diagnostic::new(
                                    DiagnosticKind::UnknownKey,
                                    format!("unknown key `{other}` in template parameter"),
                                    field.span.clone(),
                                )
                                .with_help("a parameter has only `default` and `description`");
                                diagnostic.label = did_you_mean(other, ["default", "description"]);
                                self.diagnostics.push(diagnostic);
                            }
                        }
                    }
                    declared.push((key.clone(), default));
                }
                _ => self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticKind::InvalidValue,
                        format!(
                            "expected nothing or `{{default: ...}}` for parameter `{}`, found {}",
                            key.name,
                            spec.describe()
                        ),
                        spec.span.clone(),
                    )
                    .with_help(format!("write `{}: {{default: ...}}`", key.name)),
                ),
            }
        }
        declared
    }

    fn bind_parameters(
        &mut self,
        declared: &[(Key, Option<Node>)],
        given: Option<&Node>,
        template_key: &Key,
        written: &str,
    ) -> Option<IndexMap<String, ParameterValue>> {
        let given: &[(Key, Node)] = match given {
            None => &[],
            Some(node) => match &node.value {
                Value::Map(entries) => entries,
                Value::Null => &[],
                _ => {
                    self.diagnostics.push(Diagnostic::new(
                        DiagnosticKind::InvalidValue,
                        format!(
                            "expected a mapping of parameter values, found {}",
                            node.describe()
                        ),
                        node.span.clone(),
                    ));
                    return None;
                }
            },
        };
        let mut ok = true;
        let names = || declared.iter().map(|(k, _)| k.name.as_str());
        for (key, _) in given {
            if !names().any(|name| name == key.name) {
                let mut diagnostic = Diagnostic::new(
                    DiagnosticKind::TemplateParameter,
                    format!("template `{written}` has no parameter `{}`", key.name),
                    key.span.clone(),
                );
                diagnostic.label = did_you_mean(&key.name, names());
                self.diagnostics.push(if declared.is_empty() {
                    diagnostic.with_help("the template declares no parameters")
                } else {
                    diagnostic.with_help(format!("its parameters are {}", all_of(names())))
                });
                ok = false;
            }
        }
        let mut bound = IndexMap::new();
        for (name, default) in declared {
            let value = given
                .iter()
                .find(|(key, _)| key.name == name.name)
                .map(|(_, value)| value)
                .or(default.as_ref());
            match value {
                Some(value) => {
                    bound.insert(name.name.clone(), parameter_value(value));
                }
                None => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            DiagnosticKind::TemplateParameter,
                            format!("missing parameter `{}` for template `{written}`", name.name),
                            template_key.span.clone(),
                        )
                        .with_note("the parameter is declared here", Some(name.span.clone())),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(bound)
    }
}

fn parameter_value(node: &Node) -> ParameterValue {
    fn strings(node: &Node, out: &mut Vec<(String, Span)>) {
        match &node.value {
            Value::String(text) => out.push((text.clone(), node.span.clone())),
            Value::Seq(items) => items.iter().for_each(|item| strings(item, out)),
            Value::Map(entries) => entries.iter().for_each(|(_, value)| strings(value, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    strings(node, &mut found);
    ParameterValue {
        value: node.to_json(),
        node: node.clone(),
        span: node.span.clone(),
        strings: found,
    }
}

/// The places a relative path is looked for, in order (see the module docs).
pub(crate) fn lookup_candidates(
    written: &str,
    includer_dir: &Path,
    project_root: &Path,
) -> Vec<PathBuf> {
    let path = Path::new(written);
    if path.is_absolute() {
        return vec![path.to_path_buf()];
    }
    let mut candidates = vec![
        includer_dir.join(path),
        project_root.join(path),
        project_root.join("templates").join(path),
    ];
    candidates.dedup();
    candidates
}

/// The first existing candidate for a relative path (see the module docs).
pub(crate) fn find_file(
    written: &str,
    includer_dir: &Path,
    project_root: &Path,
) -> Option<PathBuf> {
    lookup_candidates(written, includer_dir, project_root)
        .into_iter()
        .find(|candidate| candidate.is_file())
}

/// The nearest ancestor of the workflow file containing `.git`, else the current directory.
///
/// Kept relative when the workflow path is relative, so paths in diagnostics stay short.
pub(crate) fn project_root(workflow_path: &Path) -> PathBuf {
    let dir = workflow_path.parent().unwrap_or(Path::new(""));
    if let Some(found) = dir.ancestors().find(|a| a.join(".git").exists()) {
        return found.to_path_buf();
    }
    // A relative path may start below the repository root: look further up from the cwd.
    if let Ok(absolute) = std::path::absolute(dir)
        && let Some(found) = absolute.ancestors().find(|a| a.join(".git").exists())
    {
        return found.to_path_buf();
    }
    PathBuf::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Project {
        dir: tempfile::TempDir,
    }

    impl Project {
        fn new(files: &[(&str, &str)]) -> Self {
            let dir = tempfile::tempdir().expect("test fixture");
            std::fs::create_dir(dir.path().join(".git")).expect("test fixture");
            for (path, text) in files {
                let path = dir.path().join(path);
                std::fs::create_dir_all(path.parent().expect("test fixture"))
                    .expect("test fixture");
                std::fs::write(path, text).expect("test fixture");
            }
            Self { dir }
        }

        fn expand(&self, workflow: &str) -> (Vec<ExpandedStep>, Vec<Diagnostic>) {
            let path = self.dir.path().join(workflow);
            let file =
                SourceFile::new(&path, std::fs::read_to_string(&path).expect("test fixture"));
            let root = parse(&file).expect("test fixture");
            let project_root = project_root(&path);
            let mut expander = Expander::new(&path, &project_root);
            let steps = expander.expand_list(root.get("steps").expect("test fixture").1, None);
            (steps, expander.diagnostics)
        }
    }

    fn ids(steps: &[ExpandedStep]) -> Vec<&str> {
        steps
            .iter()
            .map(|s| {
                s.node
                    .get("id")
                    .expect("test fixture")
                    .1
                    .as_str()
                    .expect("test fixture")
            })
            .collect()
    }

    #[test]
    fn includes_are_replaced_by_the_template_steps_with_bound_parameters() {
        let project = Project::new(&[
            (
                "workflows/w.yaml",
                "steps:\n  - id: a\n    gate: x\n  - template: flows.yaml\n    parameters: {base: \"{{ env.url }}\"}\n  - id: z\n    gate: y\n",
            ),
            (
                "templates/flows.yaml",
                "parameters:\n  base:\n  path: {default: /login}\nsteps:\n  - id: login\n    verify: {http: {url: \"{{ parameters.base }}{{ parameters.path }}\"}}\n",
            ),
        ]);
        let (steps, diagnostics) = project.expand("workflows/w.yaml");
        assert_eq!(diagnostics, vec![]);
        assert_eq!(ids(&steps), ["a", "login", "z"]);
        let scope = steps[1].scope.as_ref().expect("test fixture");
        assert!(scope.path.ends_with("templates/flows.yaml"));
        assert_eq!(scope.parameters["base"].value, "{{ env.url }}");
        assert_eq!(scope.parameters["path"].value, "/login");
        // The included step's span points into the template file.
        assert!(
            steps[1]
                .node
                .span
                .path()
                .expect("test fixture")
                .ends_with("templates/flows.yaml")
        );
        assert_eq!(steps[1].node.span.line, 5);
        assert!(steps[0].scope.is_none());
    }

    #[test]
    fn nested_templates_chain_their_scopes() {
        let project = Project::new(&[
            (
                "w.yaml",
                "steps:\n  - template: outer.yaml\n    parameters: {x: 1}\n",
            ),
            (
                "outer.yaml",
                "parameters: {x: }\nsteps:\n  - template: inner.yaml\n    parameters: {y: \"{{ parameters.x }}\"}\n",
            ),
            (
                "inner.yaml",
                "parameters: {y: }\nsteps:\n  - id: deep\n    gate: \"echo {{ parameters.y }}\"\n",
            ),
        ]);
        let (steps, diagnostics) = project.expand("w.yaml");
        assert_eq!(diagnostics, vec![]);
        assert_eq!(ids(&steps), ["deep"]);
        let scope = steps[0].scope.as_ref().expect("test fixture");
        assert_eq!(scope.parameters["y"].value, "{{ parameters.x }}");
        assert_eq!(
            scope.parent.as_ref().expect("test fixture").parameters["x"].value,
            1
        );
    }

    #[test]
    fn cycles_are_errors_naming_the_chain() {
        let project = Project::new(&[
            ("w.yaml", "steps:\n  - template: a.yaml\n"),
            ("a.yaml", "steps:\n  - template: b.yaml\n"),
            (
                "b.yaml",
                "steps:\n  - id: ok\n    gate: x\n  - template: a.yaml\n",
            ),
        ]);
        let (_, diagnostics) = project.expand("w.yaml");
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        let cycle = &diagnostics[0];
        assert_eq!(cycle.kind, DiagnosticKind::TemplateCycle);
        assert!(cycle.span.path().expect("test fixture").ends_with("b.yaml"));
        let chain = &cycle.notes[0].message;
        assert!(
            chain.contains("a.yaml` -> `") && chain.matches("a.yaml").count() == 2,
            "{chain}"
        );
    }

    #[test]
    fn missing_unknown_and_unset_parameters_are_errors() {
        let project = Project::new(&[
            (
                "w.yaml",
                "steps:\n  - template: nowhere.yaml\n  - template: t.yaml\n    parameters: {bsae: 1}\n",
            ),
            ("t.yaml", "parameters: {base: }\nsteps: []\n"),
        ]);
        let (_, diagnostics) = project.expand("w.yaml");
        let found: Vec<_> = diagnostics
            .iter()
            .map(|d| (d.kind, d.span.line, d.label.clone()))
            .collect();
        assert_eq!(
            found,
            vec![
                (DiagnosticKind::TemplateNotFound, 2, None),
                (
                    DiagnosticKind::TemplateParameter,
                    4,
                    Some("did you mean `base`?".to_owned())
                ),
                (DiagnosticKind::TemplateParameter, 3, None),
            ]
        );
    }
}
