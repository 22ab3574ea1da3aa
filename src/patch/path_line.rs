//! The file path a model writes on its own line before a SEARCH/REPLACE block or a whole-file
//! fence, in the many ways models decorate it: `src/app.py`, `**src/app.py**`, `` `src/app.py`: ``,
//! `### File: src/app.py`, ```` ```python src/app.py ````, `./src/app.py`, `a/src/app.py`.

use super::parse::{clean_path, strip_side_prefix};

/// The repository path named by `line`, if the line is nothing but a (decorated) path.
pub(super) fn path_in_line(line: &str) -> Option<String> {
    let mut text = line.trim();
    // A fence's info string: ```` ```python src/app.py ```` or ```` ```src/app.py ````.
    if let Some(info) = text
        .strip_prefix("```")
        .or_else(|| text.strip_prefix("~~~"))
    {
        let info = info.trim_start_matches(['`', '~']);
        let last = info.split_whitespace().last()?;
        let last = last.rsplit_once(':').map_or(last, |(_, path)| path);
        return plausible(last);
    }
    text = text.trim_start_matches('#').trim();
    for label in [
        "File:",
        "file:",
        "FILE:",
        "Path:",
        "path:",
        "Filename:",
        "filename:",
    ] {
        if let Some(rest) = text.strip_prefix(label) {
            text = rest.trim();
        }
    }
    let text = text
        .trim_end_matches(':')
        .trim_matches(|c| matches!(c, '*' | '`' | '"' | '\''))
        .trim_end_matches(':');
    plausible(text)
}

/// One word that looks like a relative file path, not a sentence or a marker.
fn plausible(text: &str) -> Option<String> {
    let looks_like_path = !text.is_empty()
        && text.len() <= 300
        && !text.chars().any(char::is_whitespace)
        && (text.contains('/') || text.contains('.'))
        && !text.ends_with('.')
        && !text.starts_with(['<', '=', '>', '@', '+', '-', '*', '`', '~'])
        && text.chars().any(char::is_alphanumeric);
    looks_like_path.then(|| strip_side_prefix(&clean_path(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decorated_paths_are_read_and_prose_is_not() {
        for (line, path) in [
            ("src/app.py", "src/app.py"),
            ("**src/app.py**", "src/app.py"),
            ("`src/app.py`:", "src/app.py"),
            ("### File: ./src/app.py", "src/app.py"),
            ("```python src/app.py", "src/app.py"),
            ("```rust:src/lib.rs", "src/lib.rs"),
            ("a/src/app.py", "src/app.py"),
            ("Makefile.toml", "Makefile.toml"),
        ] {
            assert_eq!(path_in_line(line).as_deref(), Some(path), "{line}");
        }
        for line in [
            "Here is the fix.",
            "```python",
            "```",
            "<<<<<<< SEARCH",
            "=======",
            "",
            "done.",
            "- src/app.py",
        ] {
            assert_eq!(path_in_line(line), None, "{line}");
        }
    }
}
