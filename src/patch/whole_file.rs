//! Whole-file replies: a path line, then a fenced block with the file's complete new content.
//!
//! Only for small files, and only complete ones: a model that writes `// ... rest unchanged`
//! would delete the rest, so an elision line the file does not have refuses the reply. The
//! content is diffed against the file on disk into one hunk that spans the whole file, so the
//! policy sees exactly the lines that change and the applier places it in one unambiguous way.

use super::diff::{FilePatch, Hunk, LineKind, Patch};
use super::line_diff::diff_lines;
use super::parse::{ParseError, ParseErrorKind, fenced_blocks, looks_like_diff, reply_lines};
use super::path_line::path_in_line;
use super::search_replace::is_elision;
use super::text::TextFile;
use super::workspace::Workspace;

/// Files longer than this are edited, not rewritten: a rewrite costs the model the whole file
/// in tokens, and every line of it is a chance to change something by accident.
pub const WHOLE_FILE_MAX_LINES: usize = 400;
/// Bytes beyond which a file cannot be within [`WHOLE_FILE_MAX_LINES`] lines of sane length.
const WHOLE_FILE_MAX_BYTES: u64 = 400 * 1024;

/// Whether `reply` holds a fenced block with a path on the line before it or in its info string.
pub(super) fn looks_like_whole_file(reply: &str) -> bool {
    !blocks(reply).is_empty()
}

/// (path, content lines, reply line of the fence) of every fenced block that names a path.
fn blocks(reply: &str) -> Vec<(String, Vec<String>, usize)> {
    let lines = reply_lines(reply);
    let mut found = Vec::new();
    let mut body_start = 0;
    for block in fenced_blocks(&lines) {
        let Some(&(first, _)) = block.first() else {
            continue;
        };
        // The fence line is the one before the body; the path is on it or above it.
        let fence = first.saturating_sub(2);
        let path = lines
            .get(fence)
            .and_then(|&(_, text)| path_in_line(text))
            .or_else(|| {
                lines[body_start.min(fence)..fence]
                    .iter()
                    .rev()
                    .take(2)
                    .find(|(_, text)| !text.trim().is_empty())
                    .and_then(|&(_, text)| path_in_line(text))
            });
        body_start = block.last().map_or(first, |&(last, _)| last + 1);
        if looks_like_diff(&block) {
            continue;
        }
        if let Some(path) = path {
            let content = block.iter().map(|&(_, text)| text.to_owned()).collect();
            found.push((path, content, first.saturating_sub(1)));
        }
    }
    found
}

pub(super) fn parse(reply: &str, workspace: &Workspace) -> Result<Patch, ParseError> {
    let mut files = Vec::new();
    for (path, content, line) in blocks(reply) {
        files.push(file_patch(&path, &content, line, workspace)?);
    }
    if files.is_empty() {
        return Err(ParseErrorKind::NoEdit {
            expected: "a whole file (its path on a line, then its content in a fenced block)",
        }
        .into());
    }
    Ok(Patch { files })
}

fn file_patch(
    path: &str,
    content: &[String],
    line: usize,
    workspace: &Workspace,
) -> Result<FilePatch, ParseError> {
    let unreadable = |reason: String| ParseErrorKind::WholeFileUnreadable {
        file: path.to_owned(),
        reason,
    };
    // A path the workspace refuses is left to the policy, which names the rule it breaks.
    let current = match workspace.resolve(path) {
        // A file far beyond the line limit is not even read into memory.
        Ok(absolute)
            if std::fs::metadata(&absolute).is_ok_and(|meta| meta.len() > WHOLE_FILE_MAX_BYTES) =>
        {
            return Err(ParseErrorKind::WholeFileTooLarge {
                file: path.to_owned(),
                limit: WHOLE_FILE_MAX_LINES,
            }
            .into());
        }
        Ok(absolute) => match std::fs::read(&absolute) {
            Ok(bytes) => Some(
                TextFile::decode(&bytes)
                    .ok_or_else(|| unreadable("it is not UTF-8 text".to_owned()))?,
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(unreadable(error.to_string()).into()),
        },
        Err(_) => None,
    };
    let new: Vec<&str> = content.iter().map(String::as_str).collect();
    let Some(current) = current else {
        let lines = diff_lines(&[], &new);
        return Ok(FilePatch {
            old_path: None,
            new_path: Some(path.to_owned()),
            hunks: vec![whole_hunk(lines)],
            binary: false,
        });
    };
    if current.lines.len() > WHOLE_FILE_MAX_LINES {
        return Err(ParseErrorKind::WholeFileTooLarge {
            file: path.to_owned(),
            limit: WHOLE_FILE_MAX_LINES,
        }
        .into());
    }
    let old: Vec<&str> = current.lines.iter().map(|l| l.text.as_str()).collect();
    if let Some((offset, text)) = new
        .iter()
        .enumerate()
        .find(|(_, text)| is_elision(text) && !old.contains(text))
    {
        return Err(ParseErrorKind::ElidedWholeFile {
            file: path.to_owned(),
            line: line + 1 + offset,
            text: text.trim().to_owned(),
        }
        .into());
    }
    let mut lines = diff_lines(&old, &new);
    if old.is_empty() {
        lines.retain(|line| line.kind == LineKind::Add);
    }
    Ok(FilePatch {
        old_path: Some(path.to_owned()),
        new_path: Some(path.to_owned()),
        hunks: vec![whole_hunk(lines)],
        binary: false,
    })
}

fn whole_hunk(lines: Vec<super::diff::HunkLine>) -> Hunk {
    Hunk {
        header: "whole file".to_owned(),
        old_start: Some(1),
        new_start: Some(1),
        anchors: Vec::new(),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(files: &[(&str, &str)]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let workspace = Workspace::new(dir.path()).unwrap();
        (dir, workspace)
    }

    #[test]
    fn a_fenced_file_after_its_path_becomes_a_diff_of_what_changed() {
        let (_dir, workspace) = workspace(&[("src/a.py", "one\ntwo\nthree\n")]);
        let reply = "The fix:\n\n`./src/a.py`:\n```python\none\n2\nthree\n```\n\n```text\nnot a file\n```\n";
        let patch = parse(reply, &workspace).unwrap();
        assert_eq!(patch.files.len(), 1);
        assert_eq!(patch.files[0].new_path.as_deref(), Some("src/a.py"));
        assert_eq!(patch.changed_line_counts(), (1, 1));
        let created = parse("```md docs/new.md\n# New\n```\n", &workspace).unwrap();
        assert!(created.files[0].is_creation());
    }

    #[test]
    fn elided_or_oversized_content_is_refused() {
        let big = "line\n".repeat(WHOLE_FILE_MAX_LINES + 1);
        let (_dir, workspace) = workspace(&[("a.js", "a();\nb();\n"), ("big.txt", &big)]);
        let error = parse(
            "a.js\n```js\na();\n// ... rest unchanged\n```\n",
            &workspace,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("elides part of the file (line 4: `// ... rest unchanged`)"),
            "{error}"
        );
        let error = parse("big.txt\n```\nline\n```\n", &workspace)
            .unwrap_err()
            .to_string();
        assert!(error.contains("too large to replace whole"), "{error}");
    }
}
