//! Source snippets for the fixer: the lines around each `file:line` an error names
//! (`src/foo.rs:12:5`, `File "app.py", line 3`), read from the repository and nowhere else.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// `path/to/file.ext:12` or `:12:5`, and Python's `File "path", line 12`.
static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        File\ "(?P<py_path>[^"\n]+)",\ line\ (?P<py_line>\d+)
        | (?P<path>(?:[A-Za-z]:)?[A-Za-z0-9_./\\@+-]*[A-Za-z0-9_-]\.[A-Za-z0-9]{1,8})
          [:(](?P<line>\d+)(?:[:,](?P<col>\d+))?"#,
    )
    .unwrap_or_else(|_| unreachable!("constant pattern"))
});

/// Lines shown before and after the named line.
const CONTEXT_LINES: usize = 8;
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// Files a snippet is never taken from: they hold credentials, not code. By name: `.env*`,
/// SSH keys (`id_*`), key and certificate stores, kubeconfigs, Docker's `config.json`,
/// `.npmrc`, `.netrc`, `.pypirc`, `.git-credentials`; by content, whatever the name, see
/// [`holds_credentials`].
fn is_sensitive(relative: &Path) -> bool {
    let lower = |text: &std::ffi::OsStr| text.to_string_lossy().to_lowercase();
    let name = relative.file_name().map(lower).unwrap_or_default();
    let dirs: Vec<String> = relative
        .parent()
        .map(|parent| parent.components().map(|c| lower(c.as_os_str())).collect())
        .unwrap_or_default();
    let in_dir = |dir: &str| dirs.iter().any(|d| d == dir);
    in_dir(".git")
        || in_dir(".ssh")
        || in_dir(".kube") && name == "config"
        || in_dir(".docker") && name == "config.json"
        || name.starts_with(".env")
        || name.starts_with("id_")
        || name.contains("secret")
        || name.contains("kubeconfig")
        || name.contains("credentials")
        || [
            ".npmrc",
            ".netrc",
            "_netrc",
            ".pypirc",
            ".pgpass",
            ".htpasswd",
            ".git-credentials",
        ]
        .contains(&name.as_str())
        || [
            ".pem",
            ".key",
            ".p12",
            ".pfx",
            ".jks",
            ".kdbx",
            ".keystore",
            ".ppk",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Markers of a credential file under any name: a kubeconfig's inline keys and tokens, a
/// Docker `auths` map, npm auth settings, a private key, a netrc entry, AWS keys.
const CREDENTIAL_MARKERS: &[&str] = &[
    "client-key-data",
    "client-certificate-data",
    "\"auths\"",
    "_authtoken",
    "_auth=",
    "private key-----",
    "aws_secret_access_key",
    "aws_session_token",
];

/// Whether `text` is a credential file, whatever its name.
fn holds_credentials(text: &str) -> bool {
    let lower = text.to_lowercase();
    CREDENTIAL_MARKERS
        .iter()
        .any(|marker| lower.contains(marker))
        || lower.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.first() == Some(&"machine") && words.contains(&"password")
        })
}

/// A place in a file that an error named.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceRef {
    pub path: String,
    pub line: usize,
}

/// Every `file:line` named in `text`, in order of first appearance, without repeats.
pub fn find_source_refs(text: &str) -> Vec<SourceRef> {
    let mut seen = BTreeSet::new();
    let mut refs = Vec::new();
    for caps in LOCATION.captures_iter(text) {
        let (path, line) = match (caps.name("py_path"), caps.name("py_line")) {
            (Some(path), Some(line)) => (path.as_str(), line.as_str()),
            _ => match (caps.name("path"), caps.name("line")) {
                (Some(path), Some(line)) => (path.as_str(), line.as_str()),
                _ => continue,
            },
        };
        let Ok(line) = line.parse::<usize>() else {
            continue;
        };
        let source = SourceRef {
            path: path.trim_start_matches("./").to_owned(),
            line,
        };
        if line > 0 && seen.insert(source.clone()) {
            refs.push(source);
        }
    }
    refs
}

/// Lines of one file around the places errors named, for the prompt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceSnippet {
    /// Relative to the repository root, with `/` separators.
    pub path: String,
    /// The lines errors named, 1-based.
    pub lines: Vec<usize>,
    /// Numbered lines; named lines are marked with `>`.
    pub text: String,
}

/// Reads snippets for `refs` from `workdir`: files outside it (absolute paths elsewhere, `..`,
/// symlinks out), missing, binary, huge or credential files (by name or content) are skipped. At most
/// `budget_chars` characters in total; earlier references first.
pub fn read_snippets(
    workdir: &Path,
    refs: &[SourceRef],
    budget_chars: usize,
) -> Vec<SourceSnippet> {
    let Ok(root) = workdir.canonicalize() else {
        return Vec::new();
    };
    // Group the named lines by file, keeping the order files were first named in.
    let mut files: Vec<(PathBuf, String, Vec<usize>)> = Vec::new();
    for source in refs {
        let Some((absolute, relative)) = resolve(&root, &source.path) else {
            continue;
        };
        match files.iter_mut().find(|(path, ..)| *path == absolute) {
            Some((.., lines)) => lines.push(source.line),
            None => files.push((absolute, relative, vec![source.line])),
        }
    }

    let mut snippets = Vec::new();
    let mut used = 0;
    for (absolute, relative, lines) in files {
        let Some(text) = read_text(&absolute) else {
            continue;
        };
        let Some(snippet) = snippet(&relative, &text, lines) else {
            continue;
        };
        if used + snippet.text.len() > budget_chars {
            continue;
        }
        used += snippet.text.len();
        snippets.push(snippet);
    }
    snippets
}

/// The canonical path of `named` and its path relative to `root`, if it is a file inside root.
fn resolve(root: &Path, named: &str) -> Option<(PathBuf, String)> {
    let named = Path::new(named);
    if named
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return None;
    }
    let candidate = if named.is_absolute() {
        named.to_path_buf()
    } else {
        root.join(named)
    };
    let canonical = candidate.canonicalize().ok()?;
    let relative = canonical.strip_prefix(root).ok()?;
    if !canonical.is_file() || is_sensitive(relative) {
        return None;
    }
    let relative = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    Some((canonical, relative))
}

fn read_text(path: &Path) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    if metadata.len() > MAX_FILE_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    if bytes.contains(&0) {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (!holds_credentials(&text)).then_some(text)
}

fn snippet(relative: &str, text: &str, mut named: Vec<usize>) -> Option<SourceSnippet> {
    let lines: Vec<&str> = text.lines().collect();
    named.retain(|&line| line <= lines.len());
    named.sort_unstable();
    named.dedup();
    if named.is_empty() {
        return None;
    }
    let width = lines.len().to_string().len();
    let mut out = String::new();
    let mut shown_until = 0;
    for &line in &named {
        let start = line
            .saturating_sub(CONTEXT_LINES)
            .max(1)
            .max(shown_until + 1);
        let end = (line + CONTEXT_LINES).min(lines.len());
        if start > shown_until + 1 && shown_until > 0 {
            let _ = writeln!(out, "{:>width$}   ...", "");
        }
        for number in start..=end {
            let mark = if named.contains(&number) { '>' } else { ' ' };
            let _ = writeln!(out, "{mark}{number:>width$} | {}", lines[number - 1]);
        }
        shown_until = shown_until.max(end);
    }
    Some(SourceSnippet {
        path: relative.to_owned(),
        lines: named,
        text: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> Vec<(String, usize)> {
        find_source_refs(text)
            .into_iter()
            .map(|r| (r.path, r.line))
            .collect()
    }

    #[test]
    fn finds_locations_in_common_formats() {
        let log = "error[E0308]: mismatched types\n  --> src/main.rs:12:5\n\
                   Traceback (most recent call last):\n  File \"app/views.py\", line 3, in <module>\n\
                   ./web/index.ts(7,3): error TS2304\n\
                   at Object.<anonymous> (/repo/test/app.test.js:40:11)\n\
                   src/main.rs:12:5 again; version 1.2.3 and 10:30 are not files";
        assert_eq!(
            refs(log),
            [
                ("src/main.rs".to_owned(), 12),
                ("app/views.py".to_owned(), 3),
                ("web/index.ts".to_owned(), 7),
                ("/repo/test/app.test.js".to_owned(), 40),
            ]
        );
    }

    #[test]
    fn reads_marked_snippets_only_from_inside_the_repo() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        let body: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::create_dir_all(root.join("src")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("src/lib.rs"), &body).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join(".env"), "TOKEN=abc\n").unwrap_or_else(|e| panic!("{e}"));
        let outside = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(outside.path(), &body).unwrap_or_else(|e| panic!("{e}"));

        let text = format!(
            "src/lib.rs:12:1 src/lib.rs:14 .env:1 ../x.rs:1 {}:2 src/lib.rs:99",
            outside.path().display()
        );
        let snippets = read_snippets(root, &find_source_refs(&text), 10_000);
        assert_eq!(snippets.len(), 1, "{snippets:?}");
        let snippet = &snippets[0];
        assert_eq!(snippet.path, "src/lib.rs");
        assert_eq!(snippet.lines, [12, 14]);
        assert!(
            snippet.text.starts_with("  4 | line 4\n"),
            "{}",
            snippet.text
        );
        assert!(snippet.text.contains(">12 | line 12\n"));
        assert!(snippet.text.contains(">14 | line 14\n"));
        assert!(snippet.text.ends_with(" 22 | line 22\n"));
    }

    #[test]
    fn credential_files_are_never_quoted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        let line = |text: &str| format!("{text}\n").repeat(3);
        let files = [
            ("deploy/kubeconfig.yaml", line("ok: 1")),
            (
                "deploy/cluster.yaml",
                line("    client-key-data: LS0tLS1CRUdJTg=="),
            ),
            (".kube/config", line("ok: 1")),
            (".docker/config.json", line("{}")),
            (
                "ci/registry.json",
                line(r#"{"auths": {"r.io": {"auth": "dXNlcjpwdw=="}}}"#),
            ),
            ("web/.npmrc", line("registry=https://r")),
            (
                "app/settings.cfg",
                line("//r.npmjs.org/:_authToken=npm_abc"),
            ),
            ("home/.netrc", line("default")),
            (
                "notes/hosts.txt",
                line("machine github.com login bob password pw1"),
            ),
            ("certs/tls.pem", line("x")),
            ("keys/id_ed25519", line("x")),
            (
                "keys/deploy.txt",
                line("-----BEGIN OPENSSH PRIVATE KEY-----"),
            ),
            ("app/.env.production", line("X=1")),
        ];
        let mut named = String::new();
        for (path, text) in &files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap_or(root))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        }
        for (path, _) in &files {
            named.push_str(&format!("  File \"{path}\", line 2\n"));
        }
        assert_eq!(
            find_source_refs(&named).len(),
            files.len(),
            "every file is named"
        );
        std::fs::write(root.join("app.py"), line("x = 1")).unwrap_or_else(|e| panic!("{e}"));
        named.push_str("./app.py:2\n");
        let snippets = read_snippets(root, &find_source_refs(&named), 100_000);
        let paths: Vec<&str> = snippets.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["app.py"], "{named}");
    }

    #[test]
    fn budget_limits_snippets() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("a.py"), "x = 1\n".repeat(50))
            .unwrap_or_else(|e| panic!("{e}"));
        let snippets = read_snippets(dir.path(), &find_source_refs("a.py:20"), 10);
        assert!(snippets.is_empty());
    }
}
