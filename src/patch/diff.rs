//! The edit model every reply format parses into (unified diff, V4A, SEARCH/REPLACE, whole
//! file): files, hunks and their lines.

use std::fmt::Write as _;

/// Changes to one or more files, as parsed from an LLM reply in any edit format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub files: Vec<FilePatch>,
}

/// The changes to one file.
///
/// `old_path` is `None` for a file the patch creates (`--- /dev/null`), `new_path` is `None`
/// for a file it deletes. Paths are relative to the repository, with `a/` / `b/` prefixes removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePatch {
    pub old_path: Option<String>,
    pub new_path: Option<String>,
    pub hunks: Vec<Hunk>,
    /// A git binary patch or a `Binary files ... differ` line: never applied.
    pub binary: bool,
}

/// One `@@` hunk. Line numbers are hints only: they are often wrong in LLM output, and the
/// counts in the header are not kept at all (the body is the truth).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hunk {
    /// The `@@ ... @@` line as written, for messages.
    pub header: String,
    /// 1-based first line of the old side, when the header had numbers.
    pub old_start: Option<usize>,
    /// 1-based first line of the new side, when the header had numbers.
    pub new_start: Option<usize>,
    /// Lines the hunk comes after, outermost first (V4A's `@@ class Foo` / `@@ def bar():`):
    /// each is looked for from where the previous one was found, and the hunk after the last.
    pub anchors: Vec<String>,
    pub lines: Vec<HunkLine>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HunkLine {
    pub kind: LineKind,
    /// The line without its marker and without line terminator.
    pub text: String,
    /// Followed by `\ No newline at end of file`.
    pub no_newline: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Context,
    Remove,
    Add,
}

impl FilePatch {
    /// The path this change is best known by: the new path, or the old one for a deletion.
    pub fn display_path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("<unknown>")
    }

    pub fn is_creation(&self) -> bool {
        self.old_path.is_none() && self.new_path.is_some()
    }

    pub fn is_deletion(&self) -> bool {
        self.new_path.is_none() && self.old_path.is_some()
    }

    pub fn is_rename(&self) -> bool {
        matches!((&self.old_path, &self.new_path), (Some(old), Some(new)) if old != new)
    }
}

impl Hunk {
    /// The lines the hunk expects to find: context and removed lines, in order.
    pub fn old_lines(&self) -> impl Iterator<Item = &HunkLine> {
        self.lines.iter().filter(|line| line.kind != LineKind::Add)
    }

    /// The lines the hunk leaves behind: context and added lines, in order.
    pub fn new_lines(&self) -> impl Iterator<Item = &HunkLine> {
        self.lines
            .iter()
            .filter(|line| line.kind != LineKind::Remove)
    }
}

impl Patch {
    /// Lines added and removed over all files.
    pub fn changed_line_counts(&self) -> (usize, usize) {
        let lines = self
            .files
            .iter()
            .flat_map(|file| &file.hunks)
            .flat_map(|hunk| &hunk.lines);
        lines.fold((0, 0), |(added, removed), line| match line.kind {
            LineKind::Add => (added + 1, removed),
            LineKind::Remove => (added, removed + 1),
            LineKind::Context => (added, removed),
        })
    }

    /// A clean unified diff of what was parsed: prefixes restored, counts recounted, prose and
    /// fences gone. This is what goes to `patches/iteration-N.diff` and what [`Patch::sha256`]
    /// hashes, so two replies that differ only in their wrapping hash the same.
    pub fn to_unified(&self) -> String {
        let mut out = String::new();
        for file in &self.files {
            let old = file
                .old_path
                .as_ref()
                .map_or("/dev/null".to_owned(), |p| format!("a/{p}"));
            let new = file
                .new_path
                .as_ref()
                .map_or("/dev/null".to_owned(), |p| format!("b/{p}"));
            let _ = writeln!(out, "--- {old}\n+++ {new}");
            if file.binary {
                let _ = writeln!(out, "Binary files {old} and {new} differ");
            }
            for hunk in &file.hunks {
                let old_count = hunk.old_lines().count();
                let new_count = hunk.new_lines().count();
                let old_start = hunk.old_start.unwrap_or(usize::from(old_count > 0));
                let new_start = hunk.new_start.unwrap_or(usize::from(new_count > 0));
                let _ = writeln!(
                    out,
                    "@@ -{old_start},{old_count} +{new_start},{new_count} @@"
                );
                for line in &hunk.lines {
                    let marker = match line.kind {
                        LineKind::Context => ' ',
                        LineKind::Remove => '-',
                        LineKind::Add => '+',
                    };
                    let _ = writeln!(out, "{marker}{}", line.text);
                    if line.no_newline {
                        out.push_str("\\ No newline at end of file\n");
                    }
                }
            }
        }
        out
    }

    /// sha256 of [`Patch::to_unified`], for the audit log.
    pub fn sha256(&self) -> String {
        super::sha256_hex(self.to_unified().as_bytes())
    }
}

/// Test helpers shared by the parsers', locator's and re-indenter's tests.
#[cfg(test)]
pub(crate) mod marked {
    use super::{Hunk, HunkLine, LineKind};

    /// Lines written as in a diff body: `+added`, `-removed`, ` context`.
    pub(crate) fn lines(marked: &[&str]) -> Vec<HunkLine> {
        marked
            .iter()
            .map(|raw| {
                let (kind, text) = match raw.split_at(1) {
                    ("+", text) => (LineKind::Add, text),
                    ("-", text) => (LineKind::Remove, text),
                    (_, text) => (LineKind::Context, text),
                };
                HunkLine {
                    kind,
                    text: text.to_owned(),
                    no_newline: false,
                }
            })
            .collect()
    }

    /// The hunk's line kinds as markers: `" -+ "`.
    pub(crate) fn kinds(hunk: &Hunk) -> String {
        hunk.lines
            .iter()
            .map(|line| match line.kind {
                LineKind::Context => ' ',
                LineKind::Remove => '-',
                LineKind::Add => '+',
            })
            .collect()
    }
}
