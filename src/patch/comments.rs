//! Which parts of a file are comments, by the file's language, so that a pattern can be
//! counted in code only. Quoted strings are skipped while looking for comment markers: in
//! `SELECT '/*'; DROP TABLE t; SELECT '*/';` the `DROP` is code.

use std::path::Path;

/// The comment markers of one family of languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CommentSyntax {
    line: &'static [&'static str],
    block: Option<(&'static str, &'static str)>,
    /// `#` starts a comment only at the start of a word (`a#b` is one word in a shell).
    line_at_word_start: bool,
    /// PostgreSQL `$$ ... $$` bodies are strings.
    dollar_quotes: bool,
}

const SQL: CommentSyntax = CommentSyntax {
    line: &["--"],
    block: Some(("/*", "*/")),
    line_at_word_start: false,
    dollar_quotes: true,
};
const HASH: CommentSyntax = CommentSyntax {
    line: &["#"],
    block: None,
    line_at_word_start: true,
    dollar_quotes: false,
};
const C_LIKE: CommentSyntax = CommentSyntax {
    line: &["//"],
    block: Some(("/*", "*/")),
    line_at_word_start: false,
    dollar_quotes: false,
};
/// Unknown languages: nothing is a comment, so nothing is hidden from the count.
const NONE: CommentSyntax = CommentSyntax {
    line: &[],
    block: None,
    line_at_word_start: false,
    dollar_quotes: false,
};

impl CommentSyntax {
    /// The syntax of `path`, by its extension (or its name, for `Makefile` and friends).
    pub(crate) fn of(path: &str) -> Self {
        let path = Path::new(path);
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let extension = path
            .extension()
            .and_then(|ext| ext.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        match extension.as_str() {
            "sql" | "psql" | "pgsql" => SQL,
            "sh" | "bash" | "zsh" | "ksh" | "py" | "rb" | "pl" | "yaml" | "yml" | "toml"
            | "conf" | "cfg" | "ini" | "env" | "ps1" | "tf" | "r" => HASH,
            "c" | "h" | "cc" | "cpp" | "hpp" | "cs" | "java" | "kt" | "scala" | "go" | "rs"
            | "js" | "mjs" | "cjs" | "ts" | "tsx" | "jsx" | "swift" | "php" | "groovy" => C_LIKE,
            "" if matches!(name.as_str(), "makefile" | "dockerfile" | "justfile")
                || name.starts_with(".env") =>
            {
                HASH
            }
            _ => NONE,
        }
    }

    /// `text` with every comment's characters replaced by spaces (line breaks kept, so line
    /// numbers still hold).
    pub(crate) fn blank_comments(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut previous: Option<char> = None;
        while let Some(c) = rest.chars().next() {
            if let Some(quote) = self.string_start(rest, c) {
                let end = string_end(rest, &quote);
                out.push_str(&rest[..end]);
                previous = rest[..end].chars().last();
                rest = &rest[end..];
                continue;
            }
            let word_start = previous.is_none_or(char::is_whitespace);
            if self
                .line
                .iter()
                .any(|marker| rest.starts_with(marker) && (!self.line_at_word_start || word_start))
            {
                let end = rest.find('\n').unwrap_or(rest.len());
                blank(&mut out, &rest[..end]);
                rest = &rest[end..];
                continue;
            }
            if let Some((open, close)) = self.block
                && rest.starts_with(open)
            {
                let end = rest[open.len()..]
                    .find(close)
                    .map_or(rest.len(), |at| open.len() + at + close.len());
                blank(&mut out, &rest[..end]);
                previous = Some(' ');
                rest = &rest[end..];
                continue;
            }
            out.push(c);
            previous = Some(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }

    /// The closing delimiter, if a string starts at `rest`.
    fn string_start(&self, rest: &str, c: char) -> Option<String> {
        if matches!(c, '\'' | '"' | '`') {
            return Some(c.to_string());
        }
        if self.dollar_quotes && c == '$' {
            let tag_len = rest[1..].find('$')?;
            let tag = &rest[..tag_len + 2];
            if tag[1..tag.len() - 1]
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_')
            {
                return Some(tag.to_owned());
            }
        }
        None
    }
}

/// Where a string opened at the start of `rest` ends: after its closing delimiter, at the end
/// of the line for an unclosed one-character quote (so a stray apostrophe in a comment cannot
/// hide the rest of the file), or at the end of the text for an unclosed `$tag$`.
fn string_end(rest: &str, close: &str) -> usize {
    let body = &rest[close.len()..];
    let single = close.chars().count() == 1;
    let mut escaped = false;
    for (at, c) in body.char_indices() {
        if single && c == '\n' {
            return close.len() + at;
        }
        if escaped {
            escaped = false;
        } else if single && c == '\\' {
            escaped = true;
        } else if body[at..].starts_with(close) {
            return close.len() + at + close.len();
        }
    }
    rest.len()
}

/// Appends `text` with everything but line breaks made spaces.
fn blank(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(path: &str, text: &str) -> String {
        CommentSyntax::of(path)
            .blank_comments(text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn sql_comments_are_blanked_and_strings_are_not_comments() {
        assert_eq!(
            code("a.sql", "/* DROP TABLE x; */ SELECT 1; -- DROP"),
            "SELECT 1;"
        );
        assert_eq!(
            code("a.sql", "SELECT '/*'; DROP TABLE t; SELECT '*/';"),
            "SELECT '/*'; DROP TABLE t; SELECT '*/';"
        );
        assert_eq!(
            code("a.sql", "SELECT $$/*$$; DROP TABLE t; SELECT $$*/$$;"),
            "SELECT $$/*$$; DROP TABLE t; SELECT $$*/$$;"
        );
        assert_eq!(
            code("a.sql", "/*\nDROP TABLE t;\n"),
            "",
            "unclosed runs to the end"
        );
    }

    #[test]
    fn hash_comments_start_words_only() {
        assert_eq!(code("run.sh", "# rm -rf /\necho a#b # c"), "echo a#b");
        assert_eq!(
            code("run.sh", "echo \"# not\"; rm x"),
            "echo \"# not\"; rm x"
        );
        assert_eq!(code("Makefile", "# x\nall:"), "all:");
    }

    #[test]
    fn line_breaks_survive_blanking() {
        let text = "a // x\n/* y\nz */ b\n";
        assert_eq!(
            CommentSyntax::of("f.js")
                .blank_comments(text)
                .lines()
                .count(),
            3
        );
    }

    #[test]
    fn unknown_languages_have_no_comments() {
        assert_eq!(code("notes.txt", "# DROP TABLE t"), "# DROP TABLE t");
    }
}
