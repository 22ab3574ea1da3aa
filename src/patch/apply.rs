//! Applying a parsed patch: every new file content is computed in memory first ([`plan`]),
//! then written atomically ([`PatchPlan::apply`]), and can be undone ([`AppliedPatch::revert`]).

use std::collections::HashMap;
use std::path::PathBuf;

use super::apply_error::{ApplyError, ApplyErrorKind, FailureReason, HunkFailure, Region};
use super::diff::{FilePatch, HunkLine, LineKind, Patch};
use super::indent::reindentation;
use super::locate::{Haystack, LocateError, Whitespace, closest, locate};
use super::text::{TextFile, TextLine};
use super::workspace::Workspace;
use super::write::{FileWrite, remove_empty_dirs, write_atomically};

/// A patch that fits the workspace, with every file's old and new bytes.
#[derive(Debug)]
pub struct PatchPlan {
    patch_sha256: String,
    files: Vec<PlannedFile>,
    placements: Vec<HunkPlacement>,
}

/// One file the plan changes. `None` contents mean the file is absent.
#[derive(Clone, Debug)]
pub struct PlannedFile {
    /// Relative to the workspace root, as the patch names it.
    pub path: String,
    pub absolute: PathBuf,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
    /// The mode to write with: the file's own, or for a rename's target, the source's.
    pub permissions: Option<std::fs::Permissions>,
}

/// Where a hunk was placed and how loosely it matched: the audit's view of the fuzz.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HunkPlacement {
    pub file: String,
    /// 0-based index of the file section in the patch.
    #[serde(skip)]
    pub section: usize,
    /// 1-based index of the hunk in its section.
    pub hunk: usize,
    /// 1-based line in the file (before the patch) where the hunk's matched context starts.
    pub old_line: usize,
    /// Context lines ignored at the hunk's edges to place it.
    pub fuzz: usize,
    pub whitespace: Whitespace,
    /// One context line differed from the file and was kept as the file has it.
    pub stale_context: bool,
    /// 1-based lines in the new file of the hunk's added lines, in order.
    pub added_at: Vec<usize>,
}

/// What a patch did to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    Created,
    Modified,
    Deleted,
}

/// A patch that was written to disk, with what is needed to undo it.
#[derive(Debug, serde::Serialize)]
pub struct AppliedPatch {
    pub patch_sha256: String,
    pub files: Vec<AppliedFile>,
    #[serde(skip)]
    created_dirs: Vec<PathBuf>,
}

#[derive(Debug, serde::Serialize)]
pub struct AppliedFile {
    pub path: String,
    pub change: FileChange,
    pub before_sha256: Option<String>,
    pub after_sha256: Option<String>,
    #[serde(skip)]
    absolute: PathBuf,
    #[serde(skip)]
    before: Option<Vec<u8>>,
    #[serde(skip)]
    after: Option<Vec<u8>>,
    #[serde(skip)]
    permissions: Option<std::fs::Permissions>,
}

/// Computes the result of `patch` on `workspace` without writing anything.
///
/// Every file section and hunk is tried, so the error lists all failures at once.
pub fn plan(patch: &Patch, workspace: &Workspace) -> Result<PatchPlan, ApplyError> {
    let mut planner = Planner {
        workspace,
        states: Vec::new(),
        index: HashMap::new(),
        placements: Vec::new(),
    };
    let mut failures = Vec::new();
    for (section, file) in patch.files.iter().enumerate() {
        if let Err(mut failed) = planner.section(section, file) {
            failures.append(&mut failed);
        }
    }
    if !failures.is_empty() {
        return Err(ApplyErrorKind::Rejected(failures).into());
    }
    let files: Vec<PlannedFile> = planner
        .states
        .into_iter()
        .filter_map(|state| {
            let after = state.current.as_ref().map(TextFile::encode);
            (after != state.original).then_some(PlannedFile {
                path: state.path,
                absolute: state.absolute,
                before: state.original,
                after,
                permissions: state.permissions,
            })
        })
        .collect();
    // Applying a no-op would look like a repair attempt that changed nothing; say so instead.
    if files.is_empty() {
        return Err(ApplyErrorKind::NoChanges.into());
    }
    Ok(PatchPlan {
        patch_sha256: patch.sha256(),
        files,
        placements: planner.placements,
    })
}

impl PatchPlan {
    pub fn files(&self) -> &[PlannedFile] {
        &self.files
    }

    pub fn placements(&self) -> &[HunkPlacement] {
        &self.placements
    }

    /// Writes the planned contents: all files or none. Refuses if any file changed on disk
    /// since the plan was made, so nobody's edits are overwritten.
    pub fn apply(self) -> Result<AppliedPatch, ApplyError> {
        for file in &self.files {
            ensure_on_disk(&file.absolute, file.before.as_deref(), "planned")?;
        }
        let writes: Vec<FileWrite<'_>> = self
            .files
            .iter()
            .map(|file| FileWrite {
                path: &file.absolute,
                contents: file.after.as_deref(),
                original: file.before.as_deref(),
                permissions: file.permissions.as_ref(),
            })
            .collect();
        let created_dirs = write_atomically(&writes)?;
        let files = self
            .files
            .into_iter()
            .map(|file| AppliedFile {
                change: match (&file.before, &file.after) {
                    (None, _) => FileChange::Created,
                    (_, None) => FileChange::Deleted,
                    _ => FileChange::Modified,
                },
                before_sha256: file.before.as_deref().map(super::sha256_hex),
                after_sha256: file.after.as_deref().map(super::sha256_hex),
                path: file.path,
                absolute: file.absolute,
                before: file.before,
                after: file.after,
                permissions: file.permissions,
            })
            .collect();
        Ok(AppliedPatch {
            patch_sha256: self.patch_sha256,
            files,
            created_dirs,
        })
    }
}

impl AppliedPatch {
    /// Restores every file to its exact bytes before the patch (created files are removed,
    /// deleted ones come back), atomically. Refuses, changing nothing, if any file was edited
    /// after the patch was applied.
    pub fn revert(&self) -> Result<(), ApplyError> {
        for file in &self.files {
            ensure_on_disk(&file.absolute, file.after.as_deref(), "applied")?;
        }
        let writes: Vec<FileWrite<'_>> = self
            .files
            .iter()
            .map(|file| FileWrite {
                path: &file.absolute,
                contents: file.before.as_deref(),
                original: file.after.as_deref(),
                permissions: file.permissions.as_ref(),
            })
            .collect();
        let created_for_revert = write_atomically(&writes)?;
        remove_empty_dirs(&created_for_revert);
        remove_empty_dirs(&self.created_dirs);
        Ok(())
    }
}

/// Fails unless the file at `path` holds exactly `expected` (`None`: does not exist).
fn ensure_on_disk(
    path: &std::path::Path,
    expected: Option<&[u8]>,
    since: &'static str,
) -> Result<(), ApplyError> {
    let actual = match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ApplyErrorKind::Io {
                action: "read",
                path: path.to_owned(),
                source,
            }
            .into());
        }
    };
    if actual.as_deref() == expected {
        Ok(())
    } else {
        Err(ApplyErrorKind::ChangedOnDisk {
            path: path.to_owned(),
            since,
        }
        .into())
    }
}

/// A file as the plan sees it so far. Sections touching the same file apply in turn.
struct FileState {
    path: String,
    absolute: PathBuf,
    original: Option<Vec<u8>>,
    current: Option<TextFile>,
    permissions: Option<std::fs::Permissions>,
}

struct Planner<'w> {
    workspace: &'w Workspace,
    states: Vec<FileState>,
    index: HashMap<PathBuf, usize>,
    placements: Vec<HunkPlacement>,
}

impl Planner<'_> {
    /// The state of `path`, read from disk on first use.
    fn state(&mut self, path: &str) -> Result<usize, FailureReason> {
        let absolute = self
            .workspace
            .resolve(path)
            .map_err(FailureReason::UnsafePath)?;
        if let Some(&index) = self.index.get(&absolute) {
            return Ok(index);
        }
        let original = match std::fs::read(&absolute) {
            Ok(bytes) => Some(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(FailureReason::Unreadable(error.to_string())),
        };
        let current = match &original {
            Some(bytes) => Some(TextFile::decode(bytes).ok_or(FailureReason::NotText)?),
            None => None,
        };
        let permissions = std::fs::metadata(&absolute)
            .ok()
            .map(|meta| meta.permissions());
        let state = FileState {
            path: path.to_owned(),
            absolute: absolute.clone(),
            permissions,
            original,
            current,
        };
        self.states.push(state);
        self.index.insert(absolute, self.states.len() - 1);
        Ok(self.states.len() - 1)
    }

    fn section(&mut self, section: usize, file: &FilePatch) -> Result<(), Vec<HunkFailure>> {
        let whole_file = |reason| {
            vec![HunkFailure {
                file: file.display_path().to_owned(),
                hunk: None,
                reason,
                regions: Vec::new(),
            }]
        };
        if file.binary {
            return Err(whole_file(FailureReason::Binary));
        }
        let old = file
            .old_path
            .as_deref()
            .map(|path| self.state(path))
            .transpose()
            .map_err(whole_file)?;
        let new = file
            .new_path
            .as_deref()
            .map(|path| self.state(path))
            .transpose()
            .map_err(whole_file)?;
        let source = old.and_then(|index| self.states[index].current.clone());
        let adds_only = file
            .hunks
            .iter()
            .all(|hunk| hunk.lines.iter().all(|l| l.kind == LineKind::Add));
        let source = match (old, source) {
            (Some(_), Some(text)) => text,
            // A creation; or a modification of a missing file that only adds lines, which is
            // a creation whose `--- /dev/null` the model forgot.
            (None, _) | (Some(_), None) if adds_only && file.new_path.is_some() => {
                if new.is_some_and(|index| self.states[index].current.is_some()) {
                    return Err(whole_file(FailureReason::FileExists));
                }
                TextFile::from_lines(Vec::new(), true)
            }
            _ => return Err(whole_file(FailureReason::FileMissing)),
        };
        if let (Some(new), true) = (new, file.is_rename())
            && self.states[new].current.is_some()
        {
            return Err(whole_file(FailureReason::FileExists));
        }
        let result = self.hunks(section, file, &source)?;
        match new {
            None => {
                if !result.lines.is_empty() {
                    let remaining = result.lines.len();
                    return Err(whole_file(FailureReason::IncompleteDeletion { remaining }));
                }
            }
            Some(new) => self.states[new].current = Some(result),
        }
        if let Some(old) = old.filter(|&old| Some(old) != new) {
            self.states[old].current = None;
            if let Some(new) = new
                && self.states[new].permissions.is_none()
            {
                self.states[new].permissions = self.states[old].permissions.clone();
            }
        }
        Ok(())
    }

    /// Applies the section's hunks to `source`, in order.
    fn hunks(
        &mut self,
        section: usize,
        file: &FilePatch,
        source: &TextFile,
    ) -> Result<TextFile, Vec<HunkFailure>> {
        let path = file.display_path().to_owned();
        if file.hunks.is_empty() {
            // A pure rename or a header-only deletion.
            return Ok(if file.new_path.is_none() {
                TextFile::from_lines(Vec::new(), true)
            } else {
                source.clone()
            });
        }
        let haystack = Haystack::new(&source.lines);
        let mut out: Vec<TextLine> = Vec::new();
        let mut final_newline = source.final_newline;
        let (mut cursor, mut failures) = (0, Vec::new());
        for (index, hunk) in file.hunks.iter().enumerate() {
            let from = anchored_start(&source.lines, &hunk.anchors, cursor);
            let location = match locate(&haystack, hunk, from) {
                Ok(location) => location,
                Err(error) => {
                    let old_len = hunk.old_lines().count();
                    let starts = match &error {
                        LocateError::NotFound => closest(&haystack, hunk)
                            .or_else(|| hunk.old_start.map(|line| line.saturating_sub(1)))
                            .into_iter()
                            .collect(),
                        LocateError::Ambiguous(lines) => lines
                            .iter()
                            .take(MAX_REGIONS)
                            .map(|line| line.saturating_sub(1))
                            .collect(),
                        LocateError::NoAnchor => Vec::new(),
                    };
                    let regions = starts
                        .into_iter()
                        .filter_map(|start| region(&source.lines, start, old_len))
                        .collect();
                    let reason = match error {
                        LocateError::NotFound => FailureReason::ContextNotFound,
                        LocateError::Ambiguous(lines) => FailureReason::Ambiguous { lines },
                        LocateError::NoAnchor => FailureReason::NoAnchor,
                    };
                    failures.push(HunkFailure {
                        file: path.clone(),
                        hunk: Some((index + 1, hunk.header.clone())),
                        reason,
                        regions,
                    });
                    continue;
                }
            };
            let reindent = if location.whitespace == Whitespace::Ignored {
                match reindentation(location.lines, &source.lines, location.start) {
                    Ok(reindent) => reindent,
                    Err(_) => {
                        failures.push(HunkFailure {
                            file: path.clone(),
                            hunk: Some((index + 1, hunk.header.clone())),
                            reason: FailureReason::UnevenIndentation,
                            regions: region(&source.lines, location.start, location.lines.len())
                                .into_iter()
                                .collect(),
                        });
                        continue;
                    }
                }
            } else {
                None
            };
            out.extend_from_slice(&source.lines[cursor..location.start]);
            let mut position = location.start;
            let mut added_at = Vec::new();
            for line in location.lines {
                match line.kind {
                    LineKind::Context => {
                        out.push(source.lines[position].clone());
                        position += 1;
                    }
                    LineKind::Remove => position += 1,
                    LineKind::Add => {
                        let text = reindent
                            .as_ref()
                            .map_or_else(|| line.text.clone(), |shift| shift.apply(&line.text));
                        out.push(TextLine { text, eol: None });
                        added_at.push(out.len());
                    }
                }
            }
            if position == source.lines.len() {
                final_newline = eof_newline(location.lines).unwrap_or(final_newline);
            }
            self.placements.push(HunkPlacement {
                file: path.clone(),
                section,
                hunk: index + 1,
                old_line: location.start + 1,
                fuzz: location.fuzz,
                whitespace: location.whitespace,
                stale_context: location.stale_context,
                added_at,
            });
            cursor = position;
        }
        if !failures.is_empty() {
            return Err(failures);
        }
        out.extend_from_slice(&source.lines[cursor..]);
        Ok(TextFile {
            lines: out,
            final_newline,
            dominant: source.dominant,
            bom: source.bom,
        })
    }
}

/// Candidate places shown to the fixer for an ambiguous hunk, at most.
const MAX_REGIONS: usize = 3;
/// Lines shown around a region, and at most in one.
const REGION_MARGIN: usize = 3;
const MAX_REGION_LINES: usize = 40;

/// The file's lines from `start` for a hunk of `len` old lines, with a margin each side.
fn region(lines: &[TextLine], start: usize, len: usize) -> Option<Region> {
    if start >= lines.len() {
        return None;
    }
    let first = start.saturating_sub(REGION_MARGIN);
    let end = (start + len + REGION_MARGIN)
        .min(lines.len())
        .min(first + MAX_REGION_LINES);
    Some(Region {
        first_line: first + 1,
        lines: lines[first..end].iter().map(|l| l.text.clone()).collect(),
    })
}

/// Where a hunk with anchors (V4A's `@@ def run(self):`) may start: at the first line, at or
/// after `cursor`, matching the first anchor, then the next from there, and so on. The hunk
/// may begin with the anchor line itself. An anchor that matches nowhere is ignored: the
/// hunk's own context still has to place it unambiguously.
fn anchored_start(lines: &[TextLine], anchors: &[String], cursor: usize) -> usize {
    let squash = |text: &str| text.split_whitespace().collect::<String>();
    anchors.iter().fold(cursor, |from, anchor| {
        let anchor = squash(anchor);
        lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, line)| squash(&line.text) == anchor)
            .map_or(from, |(index, _)| index)
    })
}

/// Whether the file ends with a newline after a hunk that reaches its end, when the hunk's
/// `\ No newline at end of file` markers say so; `None` keeps the file's own state (a model
/// that forgot the marker must not change it).
fn eof_newline(placed: &[HunkLine]) -> Option<bool> {
    let last_new = placed
        .iter()
        .rev()
        .find(|line| line.kind != LineKind::Remove);
    let last_old = placed.iter().rev().find(|line| line.kind != LineKind::Add);
    match (
        last_old.is_some_and(|l| l.no_newline),
        last_new.is_some_and(|l| l.no_newline),
    ) {
        (_, true) => Some(false),
        (true, false) => Some(true),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::patch::{PathViolation, parse};

    fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        let workspace = Workspace::new(dir.path()).unwrap();
        (dir, workspace)
    }

    fn apply(workspace: &Workspace, reply: &str) -> Result<AppliedPatch, ApplyError> {
        plan(&parse(reply).unwrap(), workspace)?.apply()
    }

    fn read(dir: &tempfile::TempDir, path: &str) -> String {
        fs::read_to_string(dir.path().join(path)).unwrap()
    }

    fn failures(error: ApplyError) -> Vec<HunkFailure> {
        match error.kind {
            ApplyErrorKind::Rejected(failures) => failures,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    const SOURCE: &str =
        "fn main() {\n    let a = 1;\n    let b = 2;\n    println!(\"{a} {b}\");\n}\n";

    #[test]
    fn wrong_line_numbers_and_counts_and_missing_prefixes() {
        let (dir, workspace) = repo(&[("src/main.rs", SOURCE)]);
        let reply = "--- src/main.rs\n+++ src/main.rs\n@@ -40,7 +41,2 @@\n     let a = 1;\n-    let b = 2;\n+    let b = 3;\n     println!(\"{a} {b}\");\n";
        apply(&workspace, reply).unwrap();
        assert_eq!(read(&dir, "src/main.rs"), SOURCE.replace("b = 2", "b = 3"));
    }

    #[test]
    fn whitespace_drift_keeps_the_files_own_context_lines() {
        let tabbed = "fn main() {\n\tlet a = 1;  \n\tlet b = 2;\n}\n";
        let (dir, workspace) = repo(&[("m.rs", tabbed)]);
        // Spaces for tabs, trailing whitespace lost, a context line that lost its space.
        let reply = "```diff\n--- a/m.rs\n+++ b/m.rs\n@@ -1,4 +1,4 @@\n fn main() {\n     let a = 1;\n-    let b = 2;\n+\tlet b = 3;\n }\n```";
        apply(&workspace, reply).unwrap();
        assert_eq!(
            read(&dir, "m.rs"),
            "fn main() {\n\tlet a = 1;  \n\tlet b = 3;\n}\n"
        );
    }

    #[test]
    fn crlf_files_stay_crlf_whatever_the_diff_uses() {
        let crlf = SOURCE.replace('\n', "\r\n");
        let (dir, workspace) = repo(&[("w.rs", &crlf)]);
        let reply = "--- a/w.rs\r\n+++ b/w.rs\r\n@@ -2,2 +2,3 @@\r\n     let a = 1;\r\n+    let z = 0;\r\n     let b = 2;\r\n";
        apply(&workspace, reply).unwrap();
        let expected = SOURCE
            .replace("    let b", "    let z = 0;\n    let b")
            .replace('\n', "\r\n");
        assert_eq!(read(&dir, "w.rs"), expected);
    }

    #[test]
    fn a_byte_order_mark_does_not_hide_the_first_line() {
        let (dir, workspace) = repo(&[("bom.txt", "\u{feff}first\nsecond\n")]);
        apply(
            &workspace,
            "--- a/bom.txt\n+++ b/bom.txt\n@@ @@\n-first\n+1st\n second\n",
        )
        .unwrap();
        assert_eq!(read(&dir, "bom.txt"), "\u{feff}1st\nsecond\n");
    }

    #[test]
    fn final_newline_state_is_kept_unless_a_marker_says_otherwise() {
        let (dir, workspace) = repo(&[("a.txt", "one\ntwo"), ("b.txt", "one\ntwo")]);
        // No marker (the model forgot it): the file still ends without a newline.
        apply(
            &workspace,
            "--- a/a.txt\n+++ b/a.txt\n@@ @@\n one\n-two\n+three\n",
        )
        .unwrap();
        assert_eq!(read(&dir, "a.txt"), "one\nthree");
        // A marker on the old side only: the patch adds the final newline.
        let reply = "--- a/b.txt\n+++ b/b.txt\n@@ -1,2 +1,2 @@\n one\n-two\n\\ No newline at end of file\n+three\n";
        apply(&workspace, reply).unwrap();
        assert_eq!(read(&dir, "b.txt"), "one\nthree\n");
    }

    #[test]
    fn ambiguous_context_is_refused_with_the_candidate_lines() {
        let twice = "start\nif x {\n    y();\n}\nmiddle\nif x {\n    y();\n}\nend\n";
        let (dir, workspace) = repo(&[("t.rs", twice)]);
        let reply = "--- a/t.rs\n+++ b/t.rs\n@@ -6,3 +6,3 @@\n if x {\n-    y();\n+    z();\n }\n";
        let failure = failures(apply(&workspace, reply).unwrap_err()).remove(0);
        assert_eq!(
            failure.reason,
            FailureReason::Ambiguous { lines: vec![2, 6] }
        );
        assert_eq!(
            failure.to_string(),
            "`t.rs` hunk 1 (`@@ -6,3 +6,3 @@`): ambiguous: context matches at lines 2 and 6"
        );
        assert_eq!(read(&dir, "t.rs"), twice);
    }

    #[test]
    fn a_hunk_that_matches_nowhere_carries_the_lines_where_it_was_meant_to_go() {
        let file: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        let (_dir, workspace) = repo(&[("f.txt", &file)]);
        let reply = "--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n line 14\n-line 15 (as remembered)\n+line fifteen\n line 16\n";
        let failure = failures(apply(&workspace, reply).unwrap_err()).remove(0);
        assert_eq!(failure.reason, FailureReason::ContextNotFound);
        let region = &failure.regions[0];
        assert_eq!(region.first_line, 11, "three lines above `line 14`");
        assert_eq!(region.lines.first().map(String::as_str), Some("line 11"));
        assert_eq!(region.lines.last().map(String::as_str), Some("line 19"));
        assert!(
            region
                .numbered()
                .starts_with("11 | line 11\n12 | line 12\n")
        );
        // Ambiguous: one region per candidate.
        let twice = "if x {\n    y();\n}\nif x {\n    y();\n}\n";
        let (_dir, workspace) = repo(&[("t.rs", twice)]);
        let reply = "--- a/t.rs\n+++ b/t.rs\n@@ @@\n if x {\n-    y();\n+    z();\n }\n";
        let failure = failures(apply(&workspace, reply).unwrap_err()).remove(0);
        let firsts: Vec<usize> = failure.regions.iter().map(|r| r.first_line).collect();
        assert_eq!(firsts, [1, 1]);
    }

    #[test]
    fn v4a_anchors_and_search_replace_blocks_apply_through_the_same_planner() {
        let twice = "def a():\n    return 1\n\ndef b():\n    return 1\n";
        let (dir, workspace) = repo(&[("m.py", twice)]);
        let v4a = "*** Begin Patch\n*** Update File: m.py\n@@ def b():\n-    return 1\n+    return 2\n*** End Patch\n";
        let parsed = crate::patch::parse_reply(v4a, None, &workspace).unwrap();
        plan(&parsed.patch, &workspace).unwrap().apply().unwrap();
        assert_eq!(
            read(&dir, "m.py"),
            twice.replace("b():\n    return 1", "b():\n    return 2")
        );
        // A block dedented to column 0 is put back at the file's indentation.
        let search_replace = "m.py\n<<<<<<< SEARCH\ndef a():\nreturn 1\n=======\ndef a():\nreturn 10\n>>>>>>> REPLACE\n";
        let parsed = crate::patch::parse_reply(search_replace, None, &workspace).unwrap();
        let error = plan(&parsed.patch, &workspace).unwrap_err();
        assert!(
            error.to_string().contains("SEARCH/REPLACE block 1")
                && error.to_string().contains("unevenly"),
            "`def a():` is in place and `return 1` is not: {error}"
        );
        let nested = "class A:\n    def a(self):\n        return 1\n";
        let (dir, workspace) = repo(&[("n.py", nested)]);
        let dedented = "n.py\n<<<<<<< SEARCH\ndef a(self):\n    return 1\n=======\ndef a(self):\n    return 10\n>>>>>>> REPLACE\n";
        let parsed = crate::patch::parse_reply(dedented, None, &workspace).unwrap();
        plan(&parsed.patch, &workspace).unwrap().apply().unwrap();
        assert_eq!(read(&dir, "n.py"), nested.replace("return 1", "return 10"));
    }

    #[test]
    fn more_context_disambiguates_duplicated_code() {
        let twice = "start\nif x {\n    y();\n}\nmiddle\nif x {\n    y();\n}\nend\n";
        let (dir, workspace) = repo(&[("t.rs", twice)]);
        let reply =
            "--- a/t.rs\n+++ b/t.rs\n@@ -1,3 +1,3 @@\n middle\n if x {\n-    y();\n+    z();\n }\n";
        apply(&workspace, reply).unwrap();
        let expected = "start\nif x {\n    y();\n}\nmiddle\nif x {\n    z();\n}\nend\n";
        assert_eq!(read(&dir, "t.rs"), expected);
    }

    #[test]
    fn second_file_failing_leaves_the_first_untouched_and_all_failures_are_listed() {
        let (dir, workspace) = repo(&[("a.rs", SOURCE), ("b.rs", SOURCE)]);
        let reply = "--- a/a.rs\n+++ b/a.rs\n@@ @@\n-    let a = 1;\n+    let a = 7;\n--- a/b.rs\n+++ b/b.rs\n@@ -2 +2 @@\n-    let q = 1;\n+    let q = 2;\n--- a/missing.rs\n+++ b/missing.rs\n@@ @@\n-x\n+y\n";
        let failures = failures(apply(&workspace, reply).unwrap_err());
        assert_eq!(read(&dir, "a.rs"), SOURCE);
        let reasons: Vec<_> = failures
            .iter()
            .map(|f| (f.file.as_str(), &f.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("b.rs", &FailureReason::ContextNotFound),
                ("missing.rs", &FailureReason::FileMissing)
            ]
        );
    }

    #[test]
    fn revert_restores_exact_bytes_of_modified_created_and_deleted_files() {
        let crlf_no_eol = "keep\r\nthis\r\nexactly";
        let (dir, workspace) = repo(&[("m.txt", crlf_no_eol), ("gone.txt", "bye\n")]);
        let reply = "--- a/m.txt\n+++ b/m.txt\n@@ @@\n keep\n-this\n+that\n--- /dev/null\n+++ b/new/dir/n.txt\n@@ -0,0 +1 @@\n+hello\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n";
        let applied = apply(&workspace, reply).unwrap();
        assert_eq!(read(&dir, "m.txt"), "keep\r\nthat\r\nexactly");
        assert_eq!(read(&dir, "new/dir/n.txt"), "hello\n");
        assert!(!dir.path().join("gone.txt").exists());
        let changes: Vec<_> = applied
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("m.txt", FileChange::Modified),
                ("new/dir/n.txt", FileChange::Created),
                ("gone.txt", FileChange::Deleted)
            ]
        );
        assert_eq!(
            applied.files[0].before_sha256.as_deref(),
            Some(crate::patch::sha256_hex(crlf_no_eol.as_bytes()).as_str())
        );

        let audit = serde_json::to_value(&applied).unwrap();
        assert_eq!(audit["files"][0]["change"], "modified");
        assert_eq!(audit["files"][1]["before_sha256"], serde_json::Value::Null);
        assert_eq!(audit["patch_sha256"].as_str().unwrap().len(), 64);

        applied.revert().unwrap();
        assert_eq!(
            fs::read(dir.path().join("m.txt")).unwrap(),
            crlf_no_eol.as_bytes()
        );
        assert_eq!(read(&dir, "gone.txt"), "bye\n");
        assert!(
            !dir.path().join("new").exists(),
            "directories the patch created are removed"
        );
    }

    #[test]
    fn revert_refuses_to_overwrite_later_edits() {
        let (dir, workspace) = repo(&[("m.txt", "a\nb\n")]);
        let applied = apply(&workspace, "--- m.txt\n+++ m.txt\n@@ @@\n a\n-b\n+c\n").unwrap();
        fs::write(dir.path().join("m.txt"), "a\nc\nuser edit\n").unwrap();
        let error = applied.revert().unwrap_err();
        assert!(
            matches!(error.kind, ApplyErrorKind::ChangedOnDisk { .. }),
            "{error}"
        );
        assert_eq!(read(&dir, "m.txt"), "a\nc\nuser edit\n");
    }

    #[test]
    fn apply_refuses_when_a_file_changed_after_planning() {
        let (dir, workspace) = repo(&[("m.txt", "a\nb\n")]);
        let plan = plan(
            &parse("--- m.txt\n+++ m.txt\n@@ @@\n a\n-b\n+c\n").unwrap(),
            &workspace,
        )
        .unwrap();
        fs::write(dir.path().join("m.txt"), "a\nb\nuser edit\n").unwrap();
        assert!(matches!(
            plan.apply().unwrap_err().kind,
            ApplyErrorKind::ChangedOnDisk { .. }
        ));
        assert_eq!(read(&dir, "m.txt"), "a\nb\nuser edit\n");
    }

    #[test]
    fn creation_edge_cases() {
        let (dir, workspace) = repo(&[("exists.txt", "x\n")]);
        // The model forgot `/dev/null`: a pure addition to a missing file creates it.
        apply(
            &workspace,
            "--- a/fresh.txt\n+++ b/fresh.txt\n@@ -0,0 +1,2 @@\n+a\n+b\n",
        )
        .unwrap();
        assert_eq!(read(&dir, "fresh.txt"), "a\nb\n");
        let error = apply(
            &workspace,
            "--- /dev/null\n+++ b/exists.txt\n@@ -0,0 +1 @@\n+y\n",
        )
        .unwrap_err();
        assert_eq!(failures(error)[0].reason, FailureReason::FileExists);
        let error = apply(
            &workspace,
            "--- a/exists.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-zzz\n",
        )
        .unwrap_err();
        assert_eq!(failures(error)[0].reason, FailureReason::ContextNotFound);
        assert_eq!(read(&dir, "exists.txt"), "x\n");
    }

    #[test]
    fn rename_with_changes_and_two_sections_for_one_file() {
        let (dir, workspace) = repo(&[("old.rs", SOURCE)]);
        let reply = "diff --git a/old.rs b/new.rs\nrename from old.rs\nrename to new.rs\n--- a/old.rs\n+++ b/new.rs\n@@ -1,2 +1,2 @@\n fn main() {\n-    let a = 1;\n+    let a = 10;\n--- a/new.rs\n+++ b/new.rs\n@@ @@\n-    let b = 2;\n+    let b = 20;\n";
        apply(&workspace, reply).unwrap();
        assert!(!dir.path().join("old.rs").exists());
        assert_eq!(
            read(&dir, "new.rs"),
            SOURCE.replace("a = 1", "a = 10").replace("b = 2", "b = 20")
        );
    }

    #[test]
    fn the_executable_bit_survives_edit_rename_and_the_revert_of_a_deletion() {
        use std::os::unix::fs::PermissionsExt as _;
        let (dir, workspace) = repo(&[("run.sh", "echo a\n"), ("old.sh", "echo b\n")]);
        for script in ["run.sh", "old.sh"] {
            fs::set_permissions(dir.path().join(script), fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let mode = |path: &str| {
            fs::metadata(dir.path().join(path))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        let edit = "--- a/run.sh\n+++ b/run.sh\n@@ @@\n-echo a\n+echo c\n";
        apply(&workspace, edit).unwrap();
        assert_eq!(mode("run.sh"), 0o755);
        let rename = "diff --git a/old.sh b/new.sh\nrename from old.sh\nrename to new.sh\n";
        let renamed = apply(&workspace, rename).unwrap();
        assert_eq!(mode("new.sh"), 0o755);
        renamed.revert().unwrap();
        assert_eq!(mode("old.sh"), 0o755);
        let deleted = apply(&workspace, "--- a/run.sh\n+++ /dev/null\n@@ @@\n-echo c\n").unwrap();
        deleted.revert().unwrap();
        assert_eq!(mode("run.sh"), 0o755);
    }

    #[test]
    fn a_patch_that_changes_nothing_is_refused() {
        let (_dir, workspace) = repo(&[("m.txt", "a\nb\n")]);
        let error = apply(&workspace, "--- m.txt\n+++ m.txt\n@@ @@\n a\n-b\n+b\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the patch changes nothing: every file would stay as it is"
        );
    }

    #[test]
    fn unsafe_paths_are_refused_even_without_the_policy() {
        let (_dir, workspace) = repo(&[]);
        let error = apply(
            &workspace,
            "--- /dev/null\n+++ b/../escape.txt\n@@ @@\n+x\n",
        )
        .unwrap_err();
        assert!(matches!(
            failures(error)[0].reason,
            FailureReason::UnsafePath(PathViolation::ParentDir)
        ));
    }
}
