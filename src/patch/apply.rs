//! Applying a parsed patch: every new file content is computed in memory first ([`plan`]),
//! then written atomically ([`PatchPlan::apply`]), and can be undone ([`AppliedPatch::revert`]).

use std::collections::HashMap;
use std::path::PathBuf;

use super::apply_error::{ApplyError, ApplyErrorKind, FailureReason, HunkFailure};
use super::diff::{FilePatch, HunkLine, LineKind, Patch};
use super::locate::{Haystack, LocateError, Whitespace, locate};
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
    let files = planner
        .states
        .into_iter()
        .filter_map(|state| {
            let after = state.current.as_ref().map(TextFile::encode);
            (after != state.original).then_some(PlannedFile {
                path: state.path,
                absolute: state.absolute,
                before: state.original,
                after,
            })
        })
        .collect();
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
        let state = FileState {
            path: path.to_owned(),
            absolute: absolute.clone(),
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
            let location = match locate(&haystack, hunk, cursor) {
                Ok(location) => location,
                Err(error) => {
                    let reason = match error {
                        LocateError::NotFound => FailureReason::ContextNotFound,
                        LocateError::Ambiguous(lines) => FailureReason::Ambiguous { lines },
                        LocateError::NoAnchor => FailureReason::NoAnchor,
                    };
                    failures.push(HunkFailure {
                        file: path.clone(),
                        hunk: Some((index + 1, hunk.header.clone())),
                        reason,
                    });
                    continue;
                }
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
                        out.push(TextLine {
                            text: line.text.clone(),
                            eol: None,
                        });
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
        })
    }
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
