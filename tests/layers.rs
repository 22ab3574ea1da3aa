//! The layers of `src/` point one way: a top-level module may import its own layer's modules and
//! the layers below it, never a layer above, and modules of one layer import each other without
//! a cycle. CONTRIBUTING.md ("Layers") explains the map; this file is where it is declared.
//!
//! The check reads the source, not the compiler's view: every `crate::<module>` path (in `use`
//! lines, `crate::{...}` groups and paths in code) and every `super::` chain that climbs to the
//! crate root, with comments and string literals left out. Test modules are checked like any
//! other code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The layers, lowest first, and the top-level modules of `src/` in each. Keep CONTRIBUTING.md's
/// "Layers" section in step with this list.
const LAYERS: &[(&str, &[&str])] = &[
    ("core", &["core", "redact"]),
    ("workflow language", &["workflow"]),
    (
        "integrations",
        &[
            "http",
            "process",
            "patch",
            "git",
            "azure",
            "cluster",
            "llm",
            "ado",
            "notify",
            "telemetry",
        ],
    ),
    ("steps", &["steps"]),
    ("engine", &["engine"]),
    ("reports", &["report"]),
    ("run", &["workflow_run"]),
    ("hub", &["hub"]),
    ("session", &["session", "worker", "error"]),
    ("commands", &["commands", "cli", "app"]),
];

/// The crate roots: they declare the modules and sit above every layer.
const ROOTS: &[&str] = &["lib", "main"];

#[test]
fn the_modules_of_src_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_sources(&src, &src, &mut files);
    assert!(!files.is_empty(), "no Rust files under {}", src.display());
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "the module layers are broken:\n{}\n\n{}",
        problems.join("\n"),
        HOW_TO_FIX
    );
}

const HOW_TO_FIX: &str = "Layers, lowest first, are declared in tests/layers.rs (LAYERS) and \
     described in CONTRIBUTING.md. A module may use its own layer and the ones below it. Move the \
     type the lower module needs down (into `core`, or the workflow language), or the code that \
     needs the higher module up; a new top-level module needs a place in LAYERS.";

/// Every `.rs` file under `dir`, as (path relative to `src`, text).
fn read_sources(src: &Path, dir: &Path, files: &mut Vec<(PathBuf, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            read_sources(src, &path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let relative = path.strip_prefix(src).expect("under src").to_path_buf();
            files.push((relative, text));
        }
    }
}

/// One import of a top-level module by a file of another.
struct Import {
    from: String,
    to: String,
    /// `cluster/access.rs:16`
    at: String,
}

/// Every layer violation and cycle among `files` (paths relative to `src/`), one line each.
fn check(files: &[(PathBuf, String)]) -> Vec<String> {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(index, (_, modules))| modules.iter().map(move |m| (*m, index)))
        .collect();
    let mut problems = Vec::new();
    let mut imports = Vec::new();
    let mut unlayered = BTreeSet::new();
    for (path, text) in files {
        let Some(from) = top_module(path) else {
            continue;
        };
        if !layer_of.contains_key(from.as_str()) {
            unlayered.insert(from.clone());
            continue;
        }
        let depth = module_depth(path);
        for (line, to) in imported_top_modules(&code_only(text), depth) {
            if to != from && !ROOTS.contains(&to.as_str()) {
                let at = format!("{}:{line}", path.display());
                imports.push(Import {
                    from: from.clone(),
                    to,
                    at,
                });
            }
        }
    }
    for module in &unlayered {
        problems.push(format!(
            "src/{module}: the module is in no layer; add it to LAYERS"
        ));
    }
    for import in &imports {
        // A name that is not a top-level module (a crate-root item, a typo the compiler
        // reports) is no edge.
        let (Some(&from), Some(&to)) = (
            layer_of.get(import.from.as_str()),
            layer_of.get(import.to.as_str()),
        ) else {
            continue;
        };
        if to > from {
            problems.push(format!(
                "src/{}: `{}` ({}) imports `{}` ({}), a higher layer",
                import.at, import.from, LAYERS[from].0, import.to, LAYERS[to].0
            ));
        }
    }
    problems.extend(cycles(&imports, &layer_of));
    problems
}

/// Cycles among modules of one layer (edges across layers only point down, once the layer
/// check passes, so they cannot close a cycle).
fn cycles(imports: &[Import], layer_of: &BTreeMap<&str, usize>) -> Vec<String> {
    let mut edges: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for import in imports {
        let from = layer_of.get(import.from.as_str());
        if from.is_some() && from == layer_of.get(import.to.as_str()) {
            edges
                .entry(&import.from)
                .or_default()
                .entry(&import.to)
                .or_default()
                .push(&import.at);
        }
    }
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    for &start in edges.keys() {
        let mut path = vec![start];
        if let Some(cycle) = find_cycle(&edges, start, &mut path) {
            // The same cycle is found from each of its modules; report it once.
            let mut members = cycle[1..].to_vec();
            members.sort_unstable();
            if !reported.insert(members) {
                continue;
            }
            let mut text = format!("cycle: {}", cycle.join(" → "));
            for pair in cycle.windows(2) {
                let at = &edges[pair[0]][pair[1]];
                let _ = write!(
                    text,
                    "\n  {} → {}: src/{}",
                    pair[0],
                    pair[1],
                    at.join(", src/")
                );
            }
            problems.push(text);
        }
    }
    problems
}

/// A path from `path`'s last module back to `path[0]`, depth first; the returned cycle starts
/// and ends with `path[0]`.
fn find_cycle<'a>(
    edges: &BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a str>>>,
    start: &'a str,
    path: &mut Vec<&'a str>,
) -> Option<Vec<&'a str>> {
    let last = *path.last().expect("a path has a start");
    for &next in edges.get(last).map(|m| m.keys()).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(start);
            return Some(cycle);
        }
        if path.contains(&next) {
            continue;
        }
        path.push(next);
        if let Some(cycle) = find_cycle(edges, start, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}

/// `cluster` for `cluster/access.rs` and `error` for `error.rs`; `None` for a crate root.
fn top_module(path: &Path) -> Option<String> {
    let first = path.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!ROOTS.contains(&name)).then(|| name.to_owned())
}

/// How many modules deep the file's module is: 1 for `error.rs` and `cluster/mod.rs`, 2 for
/// `cluster/access.rs`.
fn module_depth(path: &Path) -> usize {
    let components = path.components().count();
    if path.file_name().is_some_and(|name| name == "mod.rs") {
        components - 1
    } else {
        components
    }
}

/// The text with comments, string and character literals blanked out (newlines kept, so
/// line numbers still hold).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&chars, i) {
            // r"..." or r#"..."#: no escapes; ends at a quote followed by as many hashes.
            let open = 1 + hashes + 1;
            out.extend(std::iter::repeat_n(' ', open));
            i += open;
            while i < chars.len() {
                let closes =
                    chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#'));
                if closes {
                    out.extend(std::iter::repeat_n(' ', 1 + hashes));
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if let Some(&escaped) = chars.get(i) {
                    out.push(blank(escaped));
                }
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&chars, i) {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The number of `#`s if a raw string (`r"`, `r#"`, `br"`) starts at `i`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    if chars[i] != 'r' || (i > 0 && is_ident(chars[i - 1]) && chars[i - 1] != 'b') {
        return None;
    }
    if i > 1 && chars[i - 1] == 'b' && is_ident(chars[i - 2]) {
        return None;
    }
    let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
    (chars.get(i + 1 + hashes) == Some(&'"')).then_some(hashes)
}

/// `'a'` and `'\n'` are characters; `'a` alone is a lifetime or label.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    match chars.get(i + 1) {
        Some('\\') => true,
        Some(_) => chars.get(i + 2) == Some(&'\''),
        None => false,
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The top-level modules the code names, with the line of each: `crate::x`, every item of
/// `crate::{x::.., y}`, and `super::` chains long enough to climb from a module `depth` deep
/// to the crate root.
fn imported_top_modules(code: &str, depth: usize) -> Vec<(usize, String)> {
    let chars: Vec<char> = code.chars().collect();
    let line_at = |i: usize| chars[..i].iter().filter(|&&c| c == '\n').count() + 1;
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == '$');
        if !starts_word || !is_ident(chars[i]) {
            i += 1;
            continue;
        }
        let (word, after) = ident_at(&chars, i);
        let follows_path = previous_non_space(&chars, i).is_some_and(|c| c == ':');
        if word == "crate" {
            if let Some(rest) = after_colons(&chars, after) {
                if chars.get(rest) == Some(&'{') {
                    for (start, name) in group_heads(&chars, rest) {
                        found.push((line_at(start), name));
                    }
                } else if chars.get(rest).copied().is_some_and(is_ident) {
                    found.push((line_at(rest), ident_at(&chars, rest).0));
                }
            }
        } else if word == "super" && !follows_path {
            let mut climbs = 1;
            let mut at = after;
            while let Some(rest) = after_colons(&chars, at) {
                let (next, next_end) = ident_at(&chars, rest);
                if next == "super" {
                    climbs += 1;
                    at = next_end;
                } else {
                    if climbs >= depth && !next.is_empty() {
                        found.push((line_at(rest), next));
                    }
                    break;
                }
            }
        }
        i = after.max(i + 1);
    }
    found
}

/// The identifier starting at `i` and the index after it.
fn ident_at(chars: &[char], i: usize) -> (String, usize) {
    let end = (i..chars.len())
        .find(|&j| !is_ident(chars[j]))
        .unwrap_or(chars.len());
    (chars[i..end].iter().collect(), end)
}

fn previous_non_space(chars: &[char], i: usize) -> Option<char> {
    chars[..i]
        .iter()
        .rev()
        .find(|c| !c.is_whitespace())
        .copied()
}

/// The index after `::` (and whitespace around it) at `i`, if there is one.
fn after_colons(chars: &[char], i: usize) -> Option<usize> {
    let skip = |mut j: usize| {
        while chars.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        j
    };
    let j = skip(i);
    (chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':')).then(|| skip(j + 2))
}

/// The first identifier of each item of the `{...}` group opening at `open`.
fn group_heads(chars: &[char], open: usize) -> Vec<(usize, String)> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    for (j, &c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => {
                depth += 1;
                expect_head = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if expect_head && depth == 1 && is_ident(c) => {
                let name = ident_at(chars, j).0;
                if name != "self" {
                    heads.push((j, name));
                }
                expect_head = false;
            }
            _ => {}
        }
    }
    heads
}

mod the_check {
    use super::*;

    fn run(files: &[(&str, &str)]) -> Vec<String> {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
            .collect();
        check(&files)
    }

    #[test]
    fn an_import_of_a_higher_layer_names_the_file_line_and_edge() {
        let problems = run(&[
            (
                "ado/logging.rs",
                "//! Logs.\n\nuse crate::engine::events::RunOutcome;\n",
            ),
            ("engine/events.rs", "use crate::ado::logging::TaskResult;\n"),
        ]);
        assert_eq!(
            problems,
            [
                "src/ado/logging.rs:3: `ado` (integrations) imports `engine` (engine), a higher layer"
            ]
        );
    }

    #[test]
    fn groups_paths_in_code_and_super_chains_count() {
        let problems = run(&[
            (
                "steps/mod.rs",
                "use crate::{core::secret::Secret, report::{self, x}};\n",
            ),
            ("llm/agent.rs", "fn f() { crate :: hub::go(); }\n"),
            (
                "git/branch.rs",
                "use super::super::engine::Engine;\nuse super::mod_b;\n",
            ),
        ]);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with("src/steps/mod.rs:1: `steps` (steps) imports `report`"));
        assert!(problems[1].starts_with("src/llm/agent.rs:1: `llm` (integrations) imports `hub`"));
        assert!(
            problems[2].starts_with("src/git/branch.rs:1: `git` (integrations) imports `engine`")
        );
    }

    #[test]
    fn comments_strings_and_characters_are_no_imports() {
        let problems = run(&[(
            "core/secret.rs",
            "//! See [`crate::engine::Event`].\n/* crate::hub /* nested */ crate::hub */\n\
             const A: &str = \"crate::hub \\\" crate::hub\";\nconst B: &str = r#\"crate::hub\"#;\n\
             const C: char = '\"'; fn f<'a>(x: &'a str) {}\n",
        )]);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_cycle_within_a_layer_is_named_with_its_files() {
        let problems = run(&[
            ("git/mod.rs", "use crate::ado::x;\n"),
            ("ado/logging.rs", "use crate::azure::y;\n"),
            ("azure/mod.rs", "\nuse crate::git::z;\n"),
        ]);
        assert_eq!(
            problems,
            [
                "cycle: ado → azure → git → ado\n  ado → azure: src/ado/logging.rs:1\n  \
              azure → git: src/azure/mod.rs:2\n  git → ado: src/git/mod.rs:1"
            ]
        );
    }

    #[test]
    fn a_module_in_no_layer_is_reported_and_roots_are_free() {
        let problems = run(&[
            ("gadget.rs", "use crate::hub::x;\n"),
            ("lib.rs", "pub mod commands;\nuse crate::commands::run;\n"),
            ("main.rs", "fn main() {}\n"),
        ]);
        assert_eq!(
            problems,
            ["src/gadget: the module is in no layer; add it to LAYERS"]
        );
    }
}
