//! SEARCH/REPLACE blocks, aider's default edit format and the shape of Claude's `str_replace`:
//!
//! ````text
//! src/app.py
//! ```python
//! <<<<<<< SEARCH
//!     return a - b
//! =======
//!     return a + b
//! >>>>>>> REPLACE
//! ```
//! ````
//!
//! Each block becomes its own file section, applied in the order written against the file as
//! the blocks before it left it (as aider does), so blocks need not follow the file's order.
//! Lines SEARCH and REPLACE share become context, which the locator may trim at the edges
//! (a stale or cut-off first or last line); changed lines must match. A line of `...` in both
//! halves elides unchanged lines: the block splits there into hunks applied in order. An empty
//! SEARCH creates a missing file, and is refused for an existing one (nothing says where).
//! The path is the line before the block (decorated or fenced), else the previous block's.

use super::diff::{FilePatch, Hunk, LineKind, Patch};
use super::line_diff::diff_lines;
use super::parse::{Line, ParseError, ParseErrorKind, reply_lines};
use super::path_line::path_in_line;

/// How far above `<<<<<<< SEARCH` the path may be (a fence line and a blank between).
const PATH_LOOKBACK: usize = 3;

pub(super) fn looks_like_search_replace(reply: &str) -> bool {
    reply.lines().any(is_search)
}

fn is_search(line: &str) -> bool {
    marker(line, '<', "SEARCH")
}

fn is_divider(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 5 && line.chars().all(|c| c == '=')
}

fn is_replace(line: &str) -> bool {
    marker(line, '>', "REPLACE")
}

/// `<<<<<<< SEARCH` with five to nine marker characters, as aider accepts.
fn marker(line: &str, repeated: char, word: &str) -> bool {
    let line = line.trim();
    let count = line.chars().take_while(|&c| c == repeated).count();
    (5..=9).contains(&count) && line[count..].trim() == word
}

pub(super) fn parse(reply: &str) -> Result<Patch, ParseError> {
    let lines = reply_lines(reply);
    let mut files = Vec::new();
    let mut path: Option<String> = None;
    let mut pos = 0;
    let mut block = 0;
    while pos < lines.len() {
        let (number, text) = lines[pos];
        if !is_search(text) {
            pos += 1;
            continue;
        }
        block += 1;
        path = named_path(&lines[..pos]).or(path);
        let Some(file) = path.clone() else {
            return Err(malformed(
                number,
                "SEARCH/REPLACE block without a file path on the line before it",
            ));
        };
        let (search, replace, next) = halves(&lines, pos + 1, number)?;
        pos = next;
        files.push(FilePatch {
            old_path: Some(file.clone()),
            new_path: Some(file),
            hunks: hunks(block, &search, &replace, number)?,
            binary: false,
        });
    }
    if files.is_empty() {
        return Err(ParseErrorKind::NoEdit {
            expected: "a SEARCH/REPLACE block (`<path>`, `<<<<<<< SEARCH`, `=======`, \
                       `>>>>>>> REPLACE`)",
        }
        .into());
    }
    Ok(Patch { files })
}

/// The path written just above a block, skipping its fence and blank lines.
fn named_path(before: &[Line<'_>]) -> Option<String> {
    for &(_, text) in before.iter().rev().take(PATH_LOOKBACK) {
        if let Some(path) = path_in_line(text) {
            return Some(path);
        }
        let bare_fence = text.starts_with("```") || text.starts_with("~~~");
        if !(text.trim().is_empty() || bare_fence) {
            return None;
        }
    }
    None
}

/// The SEARCH and REPLACE lines from `pos`, and the position after `>>>>>>> REPLACE`.
fn halves<'a>(
    lines: &[Line<'a>],
    mut pos: usize,
    start: usize,
) -> Result<(Vec<&'a str>, Vec<&'a str>, usize), ParseError> {
    let mut search = Vec::new();
    while let Some(&(_, text)) = lines.get(pos) {
        pos += 1;
        if is_divider(text) {
            let mut replace = Vec::new();
            while let Some(&(_, text)) = lines.get(pos) {
                pos += 1;
                if is_replace(text) {
                    return Ok((search, replace, pos));
                }
                if is_search(text) || is_divider(text) {
                    break;
                }
                replace.push(text);
            }
            return Err(malformed(
                start,
                "the SEARCH/REPLACE block has no `>>>>>>> REPLACE` line",
            ));
        }
        if is_search(text) || is_replace(text) {
            break;
        }
        search.push(text);
    }
    Err(malformed(
        start,
        "the SEARCH/REPLACE block has no `=======` line",
    ))
}

/// The block's hunks: one, or one per piece between `...` lines.
fn hunks(
    block: usize,
    search: &[&str],
    replace: &[&str],
    line: usize,
) -> Result<Vec<Hunk>, ParseError> {
    let search_pieces = split_elided(search);
    let replace_pieces = split_elided(replace);
    if search_pieces.len() != replace_pieces.len() {
        return Err(malformed(
            line,
            "elided lines (`...`) must stand at the same places in SEARCH and REPLACE",
        ));
    }
    let several = search_pieces.len() > 1;
    let mut hunks = Vec::new();
    for (index, (old, new)) in search_pieces.iter().zip(&replace_pieces).enumerate() {
        if old.is_empty() && new.is_empty() {
            continue;
        }
        let mut lines = diff_lines(old, new);
        // An empty SEARCH that REPLACE fills: the new file's content.
        if old.is_empty() {
            lines.retain(|line| line.kind == LineKind::Add);
        }
        let header = if several {
            format!("SEARCH/REPLACE block {block}, part {}", index + 1)
        } else {
            format!("SEARCH/REPLACE block {block}")
        };
        hunks.push(Hunk {
            header,
            old_start: None,
            new_start: None,
            anchors: Vec::new(),
            lines,
        });
    }
    Ok(hunks)
}

fn split_elided<'a>(lines: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut pieces = vec![Vec::new()];
    for &line in lines {
        if is_elision(line) {
            pieces.push(Vec::new());
        } else if let Some(piece) = pieces.last_mut() {
            piece.push(line);
        }
    }
    pieces
}

/// `...`, alone or as a comment (`// ...`, `# ... existing code ...`).
pub(super) fn is_elision(line: &str) -> bool {
    let text = line
        .trim()
        .trim_start_matches(['/', '#', '*', '<', '!', '-', ';'])
        .trim_end_matches(['/', '*', '>', '-'])
        .trim();
    text == "..."
        || text == "…"
        || (text.starts_with("...")
            && ["existing", "unchanged", "rest of", "remaining", "same as"]
                .iter()
                .any(|word| text.contains(word)))
}

fn malformed(line: usize, message: &str) -> ParseError {
    ParseErrorKind::Malformed {
        line,
        message: message.to_owned(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::diff::marked::kinds;

    #[test]
    fn blocks_with_fenced_and_bare_paths_in_any_order() {
        let reply = "Two changes.\n\nsrc/calc.py\n```python\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n```\n\n```python\n<<<<<<< SEARCH\nimport os\n=======\nimport os\nimport sys\n>>>>>>> REPLACE\n```\n**./docs/a.md**\n<<<<<<< SEARCH\n=======\n# A\n>>>>>>> REPLACE\n";
        let patch = parse(reply).unwrap();
        let paths: Vec<&str> = patch.files.iter().map(FilePatch::display_path).collect();
        assert_eq!(paths, ["src/calc.py", "src/calc.py", "docs/a.md"]);
        assert_eq!(kinds(&patch.files[0].hunks[0]), " -+");
        assert_eq!(kinds(&patch.files[1].hunks[0]), " +");
        assert_eq!(kinds(&patch.files[2].hunks[0]), "+");
        assert_eq!(patch.files[1].hunks[0].header, "SEARCH/REPLACE block 2");
    }

    #[test]
    fn elided_lines_split_a_block_into_hunks() {
        let reply = "a.rs\n<<<<<<< SEARCH\nfn a() {\n    one();\n    // ...\n    two();\n}\n=======\nfn a() {\n    uno();\n    // ...\n    two();\n}\n>>>>>>> REPLACE\n";
        let hunks = &parse(reply).unwrap().files[0].hunks;
        assert_eq!(hunks.len(), 2);
        assert_eq!(kinds(&hunks[0]), " -+");
        assert_eq!(kinds(&hunks[1]), "  ");
    }

    #[test]
    fn errors_name_the_line() {
        for (reply, expected) in [
            ("nothing", "no edit found: a SEARCH/REPLACE block"),
            (
                "Here:\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n",
                "line 2: SEARCH/REPLACE block without a file path",
            ),
            (
                "x.py\n<<<<<<< SEARCH\na\n>>>>>>> REPLACE\n",
                "line 2: the SEARCH/REPLACE block has no `=======` line",
            ),
            (
                "x.py\n<<<<<<< SEARCH\na\n=======\nb\n",
                "line 2: the SEARCH/REPLACE block has no `>>>>>>> REPLACE` line",
            ),
            (
                "x.py\n<<<<<<< SEARCH\na\n...\nb\n=======\nab\n>>>>>>> REPLACE\n",
                "line 2: elided lines",
            ),
        ] {
            let error = parse(reply).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
