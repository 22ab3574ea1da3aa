//! Parsing a unified diff out of an LLM reply.
//!
//! Tolerated, because models get them wrong: markdown fences and prose around (and between)
//! the diff, `diff --git` or plain `---`/`+++` headers, missing `a/`/`b/` prefixes, timestamps
//! after a tab, CRLF line ends, wrong counts or no numbers at all in `@@` headers (the body is
//! recounted; numbers are only hints), context lines that lost their leading space (blank
//! lines, tab-indented lines), and a missing `\ No newline at end of file` marker.

use super::diff::{FilePatch, Hunk, HunkLine, LineKind, Patch};

#[derive(Debug, thiserror::Error)]
#[error("failed to parse the patch: {kind}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseErrorKind {
    #[error(
        "no unified diff found (expected `--- a/path` and `+++ b/path` lines, or `diff --git`)"
    )]
    NoDiff,
    #[error("hunk at line {line} comes before any file header")]
    HunkWithoutFile { line: usize },
    #[error("hunk `{header}` of `{file}` (line {line}) has no lines")]
    EmptyHunk {
        file: String,
        header: String,
        line: usize,
    },
    #[error("file header for `{file}` has no hunks")]
    NoHunks { file: String },
    #[error("file header at line {line} names no file (both sides are /dev/null)")]
    NoPath { line: usize },
    #[error("no edit found: {expected}")]
    NoEdit { expected: &'static str },
    #[error("the reply holds {found}, but the agent's `edit_format` asks for {expected}")]
    WrongFormat {
        found: &'static str,
        expected: &'static str,
    },
    #[error("line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error(
        "the whole-file content of `{file}` elides part of the file (line {line}: `{text}`); \
         send the complete file, or an edit of the lines that change"
    )]
    ElidedWholeFile {
        file: String,
        line: usize,
        text: String,
    },
    #[error(
        "`{file}` is too large to replace whole (at most {limit} lines); send an edit of the \
         lines that change"
    )]
    WholeFileTooLarge { file: String, limit: usize },
    #[error("`{file}` cannot be replaced whole: {reason}")]
    WholeFileUnreadable { file: String, reason: String },
}

impl From<ParseErrorKind> for ParseError {
    fn from(kind: ParseErrorKind) -> Self {
        Self { kind }
    }
}

/// Parses the unified diff in `reply`, which may be a whole chat answer.
///
/// When the reply has fenced code blocks that look like a diff, only those are read (so prose
/// can never be mistaken for diff lines); otherwise the whole reply is scanned and prose between
/// files and hunks is skipped.
pub fn parse(reply: &str) -> Result<Patch, ParseError> {
    let lines = diff_lines(reply);
    let mut parser = Parser {
        lines: &lines,
        pos: 0,
        files: Vec::new(),
    };
    parser.run()?;
    if parser.files.is_empty() {
        return Err(ParseErrorKind::NoDiff.into());
    }
    for file in &parser.files {
        let structural =
            file.binary || file.is_rename() || file.is_creation() || file.is_deletion();
        if file.hunks.is_empty() && !structural {
            return Err(ParseErrorKind::NoHunks {
                file: file.display_path().to_owned(),
            }
            .into());
        }
    }
    Ok(Patch {
        files: parser.files,
    })
}

/// A line of the reply: its 1-based number (for messages) and its text without `\r\n`/`\n`.
pub(super) type Line<'a> = (usize, &'a str);

/// Every line of the reply, numbered, CRLF or LF.
pub(super) fn reply_lines(reply: &str) -> Vec<Line<'_>> {
    reply
        .split('\n')
        .enumerate()
        .map(|(index, line)| (index + 1, line.strip_suffix('\r').unwrap_or(line)))
        .collect()
}

/// The lines to parse: the diff-looking fenced blocks if there are any, else everything.
fn diff_lines(reply: &str) -> Vec<Line<'_>> {
    let all = reply_lines(reply);
    let fenced: Vec<Line<'_>> = fenced_blocks(&all)
        .into_iter()
        .filter(|block| looks_like_diff(block))
        .flatten()
        .collect();
    if fenced.is_empty() { all } else { fenced }
}

/// Bodies of markdown code fences (```` ``` ```` or `~~~`, at column 0 so that an indented
/// fence inside a diff of a markdown file is not taken for one). An unclosed fence runs to the end.
pub(super) fn fenced_blocks<'a>(lines: &[Line<'a>]) -> Vec<Vec<Line<'a>>> {
    let mut blocks = Vec::new();
    // The fence character and how many of them opened the block: a block that holds fences
    // (a markdown file) is opened with more of them, and only as many close it.
    let mut open: Option<(char, usize, Vec<Line<'a>>)> = None;
    for &(number, text) in lines {
        match &mut open {
            None => {
                for fence in ['`', '~'] {
                    let run = text.chars().take_while(|&c| c == fence).count();
                    if run >= 3 {
                        open = Some((fence, run, Vec::new()));
                    }
                }
            }
            Some((fence, run, body)) => {
                let closing = text.trim_end();
                if closing.len() >= *run && closing.chars().all(|c| c == *fence) {
                    blocks.push(std::mem::take(body));
                    open = None;
                } else {
                    body.push((number, text));
                }
            }
        }
    }
    if let Some((_, _, body)) = open {
        blocks.push(body);
    }
    blocks
}

pub(super) fn looks_like_diff(block: &[Line<'_>]) -> bool {
    block.iter().enumerate().any(|(index, (_, text))| {
        text.starts_with("@@")
            || text.starts_with("diff --git ")
            || (text.starts_with("--- ")
                && block
                    .get(index + 1)
                    .is_some_and(|(_, next)| next.starts_with("+++ ")))
    })
}

struct Parser<'l, 'a> {
    lines: &'l [Line<'a>],
    pos: usize,
    files: Vec<FilePatch>,
}

impl Parser<'_, '_> {
    fn text(&self, pos: usize) -> Option<&str> {
        self.lines.get(pos).map(|(_, text)| *text)
    }

    fn is_file_header(&self, pos: usize) -> bool {
        self.text(pos).is_some_and(|text| text.starts_with("--- "))
            && self
                .text(pos + 1)
                .is_some_and(|text| text.starts_with("+++ "))
    }

    fn run(&mut self) -> Result<(), ParseError> {
        while let Some(&(number, text)) = self.lines.get(self.pos) {
            if let Some(rest) = text.strip_prefix("diff --git ") {
                self.pos += 1;
                self.git_file(rest, number)?;
            } else if self.is_file_header(self.pos) {
                let (old, new) = self.plain_header();
                if old.is_none() && new.is_none() {
                    return Err(ParseErrorKind::NoPath { line: number }.into());
                }
                self.files.push(FilePatch {
                    old_path: old,
                    new_path: new,
                    hunks: Vec::new(),
                    binary: false,
                });
            } else if text.starts_with("@@") {
                let hunk = self.hunk()?;
                let Some(file) = self.files.last_mut() else {
                    return Err(ParseErrorKind::HunkWithoutFile { line: number }.into());
                };
                if hunk.lines.is_empty() {
                    let file = file.display_path().to_owned();
                    let header = hunk.header;
                    return Err(ParseErrorKind::EmptyHunk {
                        file,
                        header,
                        line: number,
                    }
                    .into());
                }
                file.hunks.push(hunk);
            } else {
                // Prose between files or hunks.
                self.pos += 1;
            }
        }
        Ok(())
    }

    /// Reads the `---`/`+++` pair at `pos`; `None` stands for `/dev/null`.
    fn plain_header(&mut self) -> (Option<String>, Option<String>) {
        let old = self
            .text(self.pos)
            .and_then(|t| t.strip_prefix("--- "))
            .and_then(header_path);
        let new = self
            .text(self.pos + 1)
            .and_then(|t| t.strip_prefix("+++ "))
            .and_then(header_path);
        self.pos += 2;
        (old, new)
    }

    /// A `diff --git` section: extended header lines, then optionally `---`/`+++`.
    fn git_file(&mut self, paths: &str, number: usize) -> Result<(), ParseError> {
        let (mut old, mut new) = git_paths(paths);
        let (mut created, mut deleted, mut binary) = (false, false, false);
        while let Some(text) = self.text(self.pos) {
            if text.starts_with("new file mode") {
                created = true;
            } else if text.starts_with("deleted file mode") {
                deleted = true;
            } else if let Some(path) = text.strip_prefix("rename from ") {
                old = Some(clean_path(path));
            } else if let Some(path) = text.strip_prefix("rename to ") {
                new = Some(clean_path(path));
            } else if text.starts_with("Binary files ") || text.starts_with("GIT binary patch") {
                binary = true;
            } else if self.is_file_header(self.pos) {
                let (plain_old, plain_new) = self.plain_header();
                // `/dev/null` on a side settles creation or deletion; otherwise the git line
                // and the `---`/`+++` lines agree, and the latter carry no quoting ambiguity.
                created |= plain_old.is_none();
                deleted |= plain_new.is_none();
                old = plain_old.or(old);
                new = plain_new.or(new);
                break;
            } else if binary {
                // The base85 body of a binary patch: skip to the next file.
                if text.starts_with("diff --git ") {
                    break;
                }
            } else if !is_git_extended_header(text) {
                break;
            }
            self.pos += 1;
        }
        if created {
            old = None;
        }
        if deleted {
            new = None;
        }
        if old.is_none() && new.is_none() {
            return Err(ParseErrorKind::NoPath { line: number }.into());
        }
        self.files.push(FilePatch {
            old_path: old,
            new_path: new,
            hunks: Vec::new(),
            binary,
        });
        Ok(())
    }

    fn hunk(&mut self) -> Result<Hunk, ParseError> {
        let header = self.text(self.pos).unwrap_or_default().to_owned();
        let ranges = HunkRanges::parse(&header);
        self.pos += 1;
        let mut lines: Vec<HunkLine> = Vec::new();
        // Whether each line was a bare blank line, read as context that lost its space.
        let mut bare_blank: Vec<bool> = Vec::new();
        let mut next_is_header = false;
        while let Some(text) = self.text(self.pos) {
            if text.starts_with("@@")
                || text.starts_with("diff --git ")
                || self.is_file_header(self.pos)
            {
                next_is_header = true;
                break;
            }
            let (kind, body) = match text.chars().next() {
                Some(' ') => (LineKind::Context, &text[1..]),
                Some('+') => (LineKind::Add, &text[1..]),
                Some('-') => (LineKind::Remove, &text[1..]),
                // A context line whose leading space was lost but whose tab indentation survived.
                Some('\t') => (LineKind::Context, text),
                None => (LineKind::Context, ""),
                Some('\\') => {
                    if let Some(last) = lines.last_mut() {
                        last.no_newline = true;
                    }
                    self.pos += 1;
                    continue;
                }
                // Prose ends the hunk, unless the hunk has begun and its header's counts say it
                // goes on: then it
                // is a context line that lost its leading space, and ending here would silently
                // drop the changes after it.
                Some(_) if !lines.is_empty() && ranges.expects_more(&lines) => {
                    (LineKind::Context, text)
                }
                Some(_) => break,
            };
            lines.push(HunkLine {
                kind,
                text: body.to_owned(),
                no_newline: false,
            });
            bare_blank.push(text.is_empty());
            self.pos += 1;
        }
        // Blank lines after the body are usually the gap before prose or the end of the reply,
        // not context. They are kept only when another hunk follows directly and the header's
        // old count asks for them; trailing context only anchors, so dropping it never changes
        // the result.
        let mut old_count = lines
            .iter()
            .filter(|line| line.kind != LineKind::Add)
            .count();
        while bare_blank.last() == Some(&true)
            && (!next_is_header || ranges.old_count.is_none_or(|expected| old_count > expected))
        {
            bare_blank.pop();
            lines.pop();
            old_count -= 1;
        }
        Ok(Hunk {
            header,
            old_start: ranges.old_start,
            new_start: ranges.new_start,
            anchors: Vec::new(),
            lines,
        })
    }
}

fn is_git_extended_header(text: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "index ",
        "old mode",
        "new mode",
        "similarity index",
        "dissimilarity index",
        "copy from ",
        "copy to ",
        "new file mode",
    ];
    PREFIXES.iter().any(|prefix| text.starts_with(prefix))
}

/// Numbers from `@@ -12,3 +12,4 @@`; any part may be missing or garbled.
#[derive(Default)]
struct HunkRanges {
    old_start: Option<usize>,
    old_count: Option<usize>,
    new_start: Option<usize>,
    new_count: Option<usize>,
}

impl HunkRanges {
    fn parse(header: &str) -> Self {
        let inner = header.trim_start_matches('@');
        let inner = inner.split("@@").next().unwrap_or_default();
        let mut ranges = Self::default();
        for token in inner.split_whitespace() {
            if let Some(range) = token.strip_prefix('-') {
                let (start, count) = parse_range(range);
                ranges.old_start = start;
                ranges.old_count = count;
            } else if let Some(range) = token.strip_prefix('+') {
                (ranges.new_start, ranges.new_count) = parse_range(range);
            }
        }
        ranges
    }
}

impl HunkRanges {
    /// Whether both counts are known and neither is reached by `lines` yet.
    fn expects_more(&self, lines: &[HunkLine]) -> bool {
        let old = lines
            .iter()
            .filter(|line| line.kind != LineKind::Add)
            .count();
        let new = lines
            .iter()
            .filter(|line| line.kind != LineKind::Remove)
            .count();
        self.old_count.is_some_and(|count| old < count)
            && self.new_count.is_some_and(|count| new < count)
    }
}

/// `12,3` or `12`, as (start, count); a bare start means a count of 1, as in `diff -u`.
fn parse_range(range: &str) -> (Option<usize>, Option<usize>) {
    match range.split_once(',') {
        Some((start, count)) => (start.parse().ok(), count.parse().ok()),
        None => {
            let start = range.parse().ok();
            (start, start.map(|_| 1))
        }
    }
}

/// The path on a `---`/`+++` line, or `None` for `/dev/null`.
fn header_path(raw: &str) -> Option<String> {
    // `diff -u` puts a timestamp after a tab.
    let raw = raw.split('\t').next().unwrap_or_default().trim();
    if raw == "/dev/null" {
        None
    } else {
        Some(strip_side_prefix(&clean_path(raw)))
    }
}

/// The two paths of `diff --git a/x b/y`, prefixes removed.
fn git_paths(rest: &str) -> (Option<String>, Option<String>) {
    let rest = rest.trim();
    // Same path on both sides (the common case) even when it contains spaces.
    if rest.len() % 2 == 1 {
        let half = rest.len() / 2;
        if rest.is_char_boundary(half) && rest.is_char_boundary(half + 1) {
            let (left, right) = (&rest[..half], &rest[half + 1..]);
            if rest.as_bytes()[half] == b' ' && strip_side_prefix(left) == strip_side_prefix(right)
            {
                let path = strip_side_prefix(&clean_path(left));
                return (Some(path.clone()), Some(path));
            }
        }
    }
    let split = rest.find(" b/").map(|at| (&rest[..at], &rest[at + 1..]));
    let split = split.or_else(|| rest.split_once(' '));
    match split {
        Some((old, new)) => (
            Some(strip_side_prefix(&clean_path(old))),
            Some(strip_side_prefix(&clean_path(new))),
        ),
        None => (None, None),
    }
}

/// Unquotes a git-quoted path and drops a leading `./`.
pub(super) fn clean_path(raw: &str) -> String {
    let raw = raw.trim();
    let unquoted = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => raw.to_owned(),
    };
    unquoted
        .strip_prefix("./")
        .map(str::to_owned)
        .unwrap_or(unquoted)
}

pub(super) fn strip_side_prefix(path: &str) -> String {
    path.strip_prefix("a/")
        .or_else(|| path.strip_prefix("b/"))
        .unwrap_or(path)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::diff::marked::kinds;

    #[test]
    fn reads_only_the_fenced_diff_of_a_chat_reply() {
        let reply = "Here is the fix:\n\n```diff\n--- a/src/app.js\n+++ b/src/app.js\n@@ -1,3 +1,3 @@\n const a = 1;\n-const b = 2;\n+const b = 3;\n const c = 4;\n```\n\n- the bullet below must not be read as a removed line\n";
        let patch = parse(reply).unwrap();
        assert_eq!(patch.files.len(), 1);
        let file = &patch.files[0];
        assert_eq!(
            (file.old_path.as_deref(), file.new_path.as_deref()),
            (Some("src/app.js"), Some("src/app.js"))
        );
        assert_eq!(kinds(&file.hunks[0]), " -+ ");
        assert_eq!(file.hunks[0].old_start, Some(1));
    }

    #[test]
    fn prose_between_unfenced_files_and_hunks_is_skipped() {
        let reply = "First the config:\n--- config.toml\n+++ config.toml\n@@ -2 +2 @@\n-port = 1\n+port = 2\nThen the code, where\n@@ @@\n fn main() {\n+    run();\n }\nThat is all.\n";
        let patch = parse(reply).unwrap();
        let file = &patch.files[0];
        assert_eq!(file.old_path.as_deref(), Some("config.toml"));
        assert_eq!(file.hunks.len(), 2);
        assert_eq!(kinds(&file.hunks[1]), " + ");
        assert_eq!(
            (file.hunks[1].old_start, file.hunks[1].header.as_str()),
            (None, "@@ @@")
        );
    }

    #[test]
    fn git_headers_new_deleted_and_renamed_files() {
        let reply = "diff --git a/new.txt b/new.txt\nnew file mode 100644\nindex 0000000..e69de29\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+one\n+two\ndiff --git a/old.txt b/old.txt\ndeleted file mode 100644\n--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\ndiff --git a/from name.rs b/to name.rs\nsimilarity index 90%\nrename from from name.rs\nrename to to name.rs\ndiff --git a/logo.png b/logo.png\nBinary files a/logo.png and b/logo.png differ\n";
        let patch = parse(reply).unwrap();
        let files = &patch.files;
        assert_eq!(files.len(), 4);
        assert!(files[0].is_creation());
        assert_eq!(files[0].new_path.as_deref(), Some("new.txt"));
        assert!(files[1].is_deletion());
        assert_eq!(kinds(&files[1].hunks[0]), "-");
        assert!(files[2].is_rename());
        assert_eq!(files[2].old_path.as_deref(), Some("from name.rs"));
        assert_eq!(files[2].new_path.as_deref(), Some("to name.rs"));
        assert!(files[2].hunks.is_empty());
        assert!(files[3].binary);
    }

    #[test]
    fn tolerates_crlf_timestamps_wrong_counts_and_lost_context_spaces() {
        let reply = "--- src/a.rs\t2024-01-01 10:00:00\r\n+++ src/a.rs\t2024-01-01 10:00:01\r\n@@ -10,99 +10,1 @@\r\n fn a() {\r\n\r\n-    old();\r\n+    new();\r\n }\r\n\r\n";
        let patch = parse(reply).unwrap();
        let hunk = &patch.files[0].hunks[0];
        assert_eq!(patch.files[0].old_path.as_deref(), Some("src/a.rs"));
        // The blank line inside the hunk is context; the one after it is dropped.
        assert_eq!(kinds(hunk), "  -+ ");
        assert_eq!(hunk.lines[2].text, "    old();");
    }

    #[test]
    fn a_context_line_without_its_space_stays_in_the_hunk_while_the_counts_say_so() {
        let reply = "--- a/x.rs\n+++ b/x.rs\n@@ -1,4 +1,4 @@\n fn a() {\nlet x = 1;\n-    old();\n+    new();\n }\nChanges:\n- renamed old to new\n";
        let hunk = &parse(reply).unwrap().files[0].hunks[0];
        assert_eq!(kinds(hunk), "  -+ ");
        assert_eq!(hunk.lines[1].text, "let x = 1;");
    }

    #[test]
    fn no_newline_marker_attaches_to_the_line_before_it() {
        let reply = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n";
        let hunk = &parse(reply).unwrap().files[0].hunks[0];
        assert!(hunk.lines[0].no_newline);
        assert!(!hunk.lines[1].no_newline);
    }

    #[test]
    fn errors_name_what_is_missing() {
        assert!(matches!(
            parse("just prose").unwrap_err().kind,
            ParseErrorKind::NoDiff
        ));
        assert!(matches!(
            parse("text\n@@ -1 +1 @@\n-a\n+b\n").unwrap_err().kind,
            ParseErrorKind::HunkWithoutFile { line: 2 }
        ));
        assert!(matches!(
            parse("--- a/x\n+++ b/x\nno hunks here\n").unwrap_err().kind,
            ParseErrorKind::NoHunks { .. }
        ));
        let message = parse("--- a/x\n+++ b/x\n@@ -1 +1 @@\nprose\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "failed to parse the patch: hunk `@@ -1 +1 @@` of `x` (line 3) has no lines"
        );
    }

    #[test]
    fn to_unified_recounts_and_restores_prefixes() {
        let patch = parse("```\n--- x\n+++ x\n@@ -3,9 +3,9 @@\n a\n-b\n+c\n+d\n```").unwrap();
        assert_eq!(
            patch.to_unified(),
            "--- a/x\n+++ b/x\n@@ -3,2 +3,3 @@\n a\n-b\n+c\n+d\n"
        );
        let same = parse("Sure!\n--- a/x\n+++ b/x\n@@ -3,2 +3,3 @@\n a\n-b\n+c\n+d\n").unwrap();
        assert_eq!(patch.sha256(), same.sha256());
    }
}
