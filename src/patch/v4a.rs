//! V4A patches, the format of OpenAI's `apply_patch` tool (GPT-4.1, GPT-5, Codex):
//!
//! ```text
//! *** Begin Patch
//! *** Update File: src/app.py
//! *** Move to: src/main.py        (optional: a rename)
//! @@ class App                    (optional anchors: the hunk comes after these lines)
//!  context
//! -removed
//! +added
//! *** End of File                 (optional)
//! *** Add File: src/new.py
//! +every line added
//! *** Delete File: src/old.py
//! *** End Patch
//! ```
//!
//! Tolerated, as for unified diffs: fences and prose around the patch, a missing
//! `*** Begin Patch` or `*** End Patch`, CRLF, context lines that lost their leading space,
//! unified-style `@@ -1,3 +1,3 @@` headers, and `./` or `a/` path prefixes.

use super::diff::{FilePatch, Hunk, HunkLine, LineKind, Patch};
use super::parse::{ParseError, ParseErrorKind, clean_path, reply_lines, strip_side_prefix};

const BEGIN: &str = "*** Begin Patch";
const END: &str = "*** End Patch";

/// Whether `reply` holds a V4A patch.
pub(super) fn looks_like_v4a(reply: &str) -> bool {
    reply.lines().any(|line| {
        let line = line.trim();
        line == BEGIN || file_operation(line).is_some()
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    Update,
    Add,
    Delete,
}

fn file_operation(line: &str) -> Option<(Operation, &str)> {
    [
        ("*** Update File:", Operation::Update),
        ("*** Add File:", Operation::Add),
        ("*** Delete File:", Operation::Delete),
    ]
    .into_iter()
    .find_map(|(prefix, op)| line.strip_prefix(prefix).map(|path| (op, path.trim())))
}

/// Parses every V4A patch in `reply`.
pub(super) fn parse(reply: &str) -> Result<Patch, ParseError> {
    let mut parser = Parser::default();
    for (number, text) in reply_lines(reply) {
        parser.line(number, text)?;
    }
    parser.finish_hunk();
    if parser.files.is_empty() {
        return Err(ParseErrorKind::NoEdit {
            expected: "a V4A patch (`*** Begin Patch`, `*** Update File: <path>`, ...)",
        }
        .into());
    }
    for (file, line) in parser.files.iter().zip(&parser.file_lines) {
        if file.hunks.is_empty() && !file.is_deletion() && !file.is_rename() {
            let message = format!("`{}` has no changes", file.display_path());
            return Err(ParseErrorKind::Malformed {
                line: *line,
                message,
            }
            .into());
        }
    }
    Ok(Patch {
        files: parser.files,
    })
}

#[derive(Default)]
struct Parser {
    /// Inside a patch: after `*** Begin Patch` or a file operation, before `*** End Patch`.
    inside: bool,
    operation: Option<Operation>,
    files: Vec<FilePatch>,
    /// The reply line of each file's operation, for messages.
    file_lines: Vec<usize>,
    hunk: Option<Hunk>,
    /// Whether each line of the open hunk was a bare blank line.
    bare_blank: Vec<bool>,
}

impl Parser {
    fn line(&mut self, number: usize, text: &str) -> Result<(), ParseError> {
        let trimmed = text.trim();
        if trimmed == BEGIN {
            self.finish_hunk();
            self.inside = true;
            self.operation = None;
            return Ok(());
        }
        if let Some((operation, path)) = file_operation(trimmed) {
            self.finish_hunk();
            self.inside = true;
            self.start_file(number, operation, path)?;
            return Ok(());
        }
        if !self.inside {
            return Ok(());
        }
        // The end of the patch: its marker, or a closing fence when the model forgot it.
        if trimmed == END || text.starts_with("```") || text.starts_with("~~~") {
            self.finish_hunk();
            self.inside = false;
            self.operation = None;
            return Ok(());
        }
        if let Some(path) = trimmed.strip_prefix("*** Move to:") {
            let Some(file) = self.files.last_mut().filter(|_| self.operation.is_some()) else {
                return Err(malformed(number, "`*** Move to:` outside an update"));
            };
            file.new_path = Some(repo_path(path));
            return Ok(());
        }
        if trimmed == "*** End of File" {
            self.finish_hunk();
            return Ok(());
        }
        if trimmed.starts_with("*** ") {
            let message = format!("unknown V4A line `{}`", first_chars(trimmed));
            return Err(malformed(number, &message));
        }
        match self.operation {
            // Prose between `*** Begin Patch` and the first file.
            None => Ok(()),
            Some(Operation::Delete) => {
                if trimmed.is_empty() {
                    Ok(())
                } else {
                    Err(malformed(number, "a deleted file takes no lines"))
                }
            }
            Some(Operation::Add) => {
                let body = text.strip_prefix('+').unwrap_or(text);
                self.push(LineKind::Add, body, text.is_empty());
                Ok(())
            }
            Some(Operation::Update) => {
                self.update_line(text);
                Ok(())
            }
        }
    }

    fn start_file(
        &mut self,
        number: usize,
        operation: Operation,
        path: &str,
    ) -> Result<(), ParseError> {
        if path.is_empty() {
            return Err(malformed(number, "a file operation names no file"));
        }
        let path = repo_path(path);
        let (old_path, new_path) = match operation {
            Operation::Update => (Some(path.clone()), Some(path)),
            Operation::Add => (None, Some(path)),
            Operation::Delete => (Some(path), None),
        };
        self.files.push(FilePatch {
            old_path,
            new_path,
            hunks: Vec::new(),
            binary: false,
        });
        self.file_lines.push(number);
        self.operation = Some(operation);
        if operation == Operation::Add {
            self.hunk = Some(new_hunk("(new file)".to_owned()));
        }
        Ok(())
    }

    fn update_line(&mut self, text: &str) {
        if let Some(anchor) = text.strip_prefix("@@") {
            let open = self.hunk.as_ref().is_some_and(|hunk| hunk.lines.is_empty());
            if !open {
                self.finish_hunk();
                self.hunk = Some(new_hunk(text.trim().to_owned()));
            }
            let anchor = anchor.trim();
            if let Some(hunk) = self.hunk.as_mut() {
                match unified_start(anchor) {
                    Some(start) => hunk.old_start = Some(start),
                    None if !anchor.is_empty() => hunk.anchors.push(anchor.to_owned()),
                    None => {}
                }
            }
            return;
        }
        let (kind, body) = match text.chars().next() {
            Some(' ') => (LineKind::Context, &text[1..]),
            Some('+') => (LineKind::Add, &text[1..]),
            Some('-') => (LineKind::Remove, &text[1..]),
            // A blank context line, or one that lost its leading space.
            _ => (LineKind::Context, text),
        };
        self.push(kind, body, text.is_empty());
    }

    fn push(&mut self, kind: LineKind, body: &str, bare_blank: bool) {
        let hunk = self
            .hunk
            .get_or_insert_with(|| new_hunk("(first change)".to_owned()));
        hunk.lines.push(HunkLine {
            kind,
            text: body.to_owned(),
            no_newline: false,
        });
        self.bare_blank.push(bare_blank);
    }

    /// Closes the open hunk. Bare blank lines at its end are the gap before the next marker or
    /// prose, not content (an added file's blank lines carry their `+`); trailing context only
    /// anchors, so dropping it never changes the result.
    fn finish_hunk(&mut self) {
        let Some(mut hunk) = self.hunk.take() else {
            return;
        };
        let mut bare = std::mem::take(&mut self.bare_blank);
        while bare.last() == Some(&true) {
            bare.pop();
            hunk.lines.pop();
        }
        if let Some(file) = self.files.last_mut()
            && (!hunk.lines.is_empty() || file.is_creation())
        {
            file.hunks.push(hunk);
        }
    }
}

fn new_hunk(header: String) -> Hunk {
    Hunk {
        header,
        old_start: None,
        new_start: None,
        anchors: Vec::new(),
        lines: Vec::new(),
    }
}

/// The old start of a unified-style `@@ -12,3 +12,4 @@` written where an anchor goes.
fn unified_start(anchor: &str) -> Option<usize> {
    let inner = anchor.trim_end_matches('@').trim();
    let mut parts = inner.split_whitespace();
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let number = |range: &str| range.split(',').next()?.parse::<usize>().ok();
    (parts.next().is_none() && number(new).is_some())
        .then(|| number(old))
        .flatten()
}

fn repo_path(raw: &str) -> String {
    strip_side_prefix(&clean_path(raw.trim().trim_matches('`')))
}

fn malformed(line: usize, message: &str) -> ParseError {
    ParseErrorKind::Malformed {
        line,
        message: message.to_owned(),
    }
    .into()
}

fn first_chars(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::diff::marked::kinds;

    #[test]
    fn update_add_delete_and_move_in_one_fenced_reply() {
        let reply = "Here is the patch:\n```\n*** Begin Patch\n*** Update File: ./src/app.py\n*** Move to: src/main.py\n@@ class App\n@@     def run(self):\n         x = 1\n-        y = 2\n+        y = 3\n\n*** Add File: a/docs/new.md\n+# New\n+\n+text\n*** Delete File: old.txt\n*** End Patch\n```\nDone.\n";
        let patch = parse(reply).unwrap();
        let [update, add, delete] = &patch.files[..] else {
            panic!("{patch:?}")
        };
        assert_eq!(update.old_path.as_deref(), Some("src/app.py"));
        assert_eq!(update.new_path.as_deref(), Some("src/main.py"));
        let hunk = &update.hunks[0];
        assert_eq!(hunk.anchors, ["class App", "def run(self):"]);
        assert_eq!(
            kinds(hunk),
            " -+",
            "the blank line before the next file is dropped"
        );
        assert_eq!(hunk.lines[1].text, "        y = 2");
        assert!(add.is_creation());
        assert_eq!(add.new_path.as_deref(), Some("docs/new.md"));
        let added: Vec<&str> = add.hunks[0].lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(added, ["# New", "", "text"]);
        assert!(delete.is_deletion());
    }

    #[test]
    fn several_hunks_crlf_missing_markers_and_unified_headers() {
        let reply = "*** Update File: m.rs\r\n@@ -10,3 +10,3 @@\r\n a\r\n-b\r\n+B\r\n@@\r\nc\r\n-d\r\n+D\r\n";
        let patch = parse(reply).unwrap();
        let hunks = &patch.files[0].hunks;
        assert_eq!(hunks.len(), 2);
        assert_eq!((hunks[0].old_start, hunks[0].anchors.len()), (Some(10), 0));
        assert_eq!(kinds(&hunks[1]), " -+", "`c` lost its leading space");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let error = parse("no patch here").unwrap_err().to_string();
        assert!(error.contains("no edit found: a V4A patch"), "{error}");
        let error = parse("*** Begin Patch\n*** Update File: x\n*** End Patch\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "failed to parse the patch: line 2: `x` has no changes"
        );
        let error = parse("*** Begin Patch\n*** Frobnicate File: x\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 2: unknown V4A line"), "{error}");
    }
}
