//! Why a patch was not applied (or not reverted), worded for the fixer agent's next attempt.

use std::fmt;
use std::path::PathBuf;

use super::workspace::PathViolation;

#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct ApplyError {
    pub kind: ApplyErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyErrorKind {
    /// The patch does not fit the files: every failing file and hunk, so the fixer hears
    /// about all of them at once.
    #[error("the patch does not apply:{}", list(.0))]
    Rejected(Vec<HunkFailure>),
    #[error("the patch changes nothing: every file would stay as it is")]
    NoChanges,
    /// Writing failed; every file was put back as it was.
    #[error("failed to {action} `{}`; no file was changed", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing failed and so did restoring some originals. Their contents are kept in
    /// `backup_dir` so that no work is lost.
    #[error(
        "failed to {action} `{}`, and failed to restore {} file(s); originals saved in `{}`",
        path.display(), unrestored.len(), backup_dir.display()
    )]
    RestoreFailed {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
        unrestored: Vec<PathBuf>,
        backup_dir: PathBuf,
    },
    /// The file is not what the plan (or the applied patch) expects: writing would overwrite
    /// someone's changes, so nothing is written.
    #[error("`{}` changed on disk since the patch was {since}; no file was changed", path.display())]
    ChangedOnDisk { path: PathBuf, since: &'static str },
}

impl From<ApplyErrorKind> for ApplyError {
    fn from(kind: ApplyErrorKind) -> Self {
        Self { kind }
    }
}

fn list(failures: &[HunkFailure]) -> String {
    failures
        .iter()
        .map(|failure| format!("\n- {failure}"))
        .collect()
}

/// One reason the patch was refused, for one file and possibly one hunk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HunkFailure {
    pub file: String,
    /// 1-based index of the hunk in its file section, and its `@@` header as written.
    pub hunk: Option<(usize, String)>,
    pub reason: FailureReason,
    /// The file's current lines where the hunk was most likely meant to go (each candidate,
    /// when it was ambiguous): what the next attempt needs to copy its context from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Region>,
}

/// Consecutive lines of a file as it is now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Region {
    /// 1-based number of the first line.
    pub first_line: usize,
    pub lines: Vec<String>,
}

impl Region {
    /// The lines with their numbers, right-aligned: `  12 | text`.
    pub fn numbered(&self) -> String {
        let last = self.first_line + self.lines.len().saturating_sub(1);
        let width = last.to_string().len();
        self.lines
            .iter()
            .enumerate()
            .map(|(offset, text)| format!("{:>width$} | {text}\n", self.first_line + offset))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FailureReason {
    #[error("context not found")]
    ContextNotFound,
    #[error("ambiguous: context matches at lines {}", join_lines(lines))]
    Ambiguous { lines: Vec<usize> },
    #[error("the hunk only adds lines, so nothing says where in the existing file they go")]
    NoAnchor,
    #[error(
        "the hunk's lines match only with their indentation changed unevenly, so the \
         indentation of its added lines is unclear"
    )]
    UnevenIndentation,
    #[error("the file does not exist")]
    FileMissing,
    #[error("the patch creates the file but it already exists")]
    FileExists,
    #[error("the file is not UTF-8 text")]
    NotText,
    #[error("binary patches are not applied")]
    Binary,
    #[error("the deletion does not remove the whole file ({remaining} line(s) would remain)")]
    IncompleteDeletion { remaining: usize },
    #[error("unsafe path: {0}")]
    UnsafePath(PathViolation),
    #[error("failed to read the file: {0}")]
    Unreadable(String),
}

fn join_lines(lines: &[usize]) -> String {
    match lines {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(usize::to_string).collect();
            format!("{} and {last}", init.join(", "))
        }
    }
}

impl fmt::Display for HunkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hunk {
            Some((index, header)) => {
                write!(
                    f,
                    "`{}` hunk {index} (`{header}`): {}",
                    self.file, self.reason
                )
            }
            None => write!(f, "`{}`: {}", self.file, self.reason),
        }
    }
}
