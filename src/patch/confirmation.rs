//! `require_confirmation` patterns: plain text or `re:` regular expressions, both matched
//! case-insensitively, line by line, and counted in a file's text and in its code alone
//! (comments blanked) so that enabling a commented-out statement counts as adding it.

use regex::{Regex, RegexBuilder};

use super::comments::CommentSyntax;

/// Patterns every run asks a human about, whatever the workflow adds: the common spellings of
/// recursive deletion, dropping and emptying databases, and tearing down infrastructure.
pub const DEFAULT_CONFIRMATION: [&str; 10] = [
    // `rm -rf`, `rm -fr`, `rm -Rf`, `rm -r -f`, `rm --recursive --force`, `rm -r dir`.
    r"re:\brm\s+(-\S+\s+)*(-[a-z]*r[a-z]*|--recursive)\b",
    r"re:\bdrop\s+(table|database|schema|index|view|user|role|owned)\b",
    r"re:\btruncate\b",
    // No `where` before the end of the statement or the line.
    r#"re:\bdelete\s+from\s+[\w."`\[\]]+\s*(;|$)"#,
    r"re:\bkubectl\b.*\bdelete\s+(ns|namespaces?)\b",
    r"re:\bkubectl\b.*\bdelete\b.*\s--all\b",
    r"re:\bgit\s+push\b.*\s(--force\b|-f\b|--force-with-lease\b)",
    r"re:\b(terraform|tofu)\s+destroy\b",
    r"re:\baz\s+(group|aks|sql\s+db|storage\s+account|keyvault)\s+delete\b",
    r"re:\b(mkfs(\.\w+)?|dd\s+.*\bof=/dev/)",
];

/// One compiled `require_confirmation` entry.
#[derive(Clone, Debug)]
pub(crate) struct ConfirmationPattern {
    /// As written in the workflow (or in [`DEFAULT_CONFIRMATION`]).
    pub(crate) written: String,
    regex: Regex,
}

impl ConfirmationPattern {
    /// `re:` starts a regular expression; anything else is literal text. Both ignore case,
    /// so `DROP` also catches `drop table`.
    pub(crate) fn new(written: &str) -> Result<Self, Box<regex::Error>> {
        let source = match written.strip_prefix("re:") {
            Some(expression) => expression.to_owned(),
            None => regex::escape(written),
        };
        let regex = RegexBuilder::new(&source)
            .case_insensitive(true)
            // Line by line: `$` is the end of the line.
            .multi_line(true)
            .build()
            .map_err(Box::new)?;
        Ok(Self {
            written: written.to_owned(),
            regex,
        })
    }

    pub(crate) fn matches(&self, line: &str) -> bool {
        self.regex.is_match(line)
    }

    /// Occurrences in `text`, line by line.
    pub(crate) fn count(&self, text: &str) -> usize {
        text.lines()
            .map(|line| self.regex.find_iter(line).count())
            .sum()
    }

    /// The first line of `after` (1-based) with an occurrence that `before` does not have at
    /// a line of the same text: where the new occurrence is.
    pub(crate) fn first_new_line(&self, before: &str, after: &str) -> Option<usize> {
        let mut old: Vec<&str> = before
            .lines()
            .filter(|line| self.matches(line))
            .map(str::trim)
            .collect();
        let mut first_match = None;
        for (index, line) in after.lines().enumerate() {
            if !self.matches(line) {
                continue;
            }
            first_match.get_or_insert(index + 1);
            match old.iter().position(|seen| *seen == line.trim()) {
                Some(position) => {
                    old.swap_remove(position);
                }
                None => return Some(index + 1),
            }
        }
        first_match
    }
}

/// More occurrences of a pattern in a file after a patch than before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Increase {
    pub(crate) before: usize,
    pub(crate) after: usize,
    /// Counted in code only (comments blanked): the text had as many before, but fewer
    /// of them were live.
    pub(crate) in_code: bool,
    /// 1-based line in the patched file of the first new occurrence.
    pub(crate) line: Option<usize>,
}

impl ConfirmationPattern {
    /// Whether the file at `path` has more occurrences after the patch than before, in its
    /// text or in its code alone, and where the first new one is.
    pub(crate) fn increase(&self, path: &str, before: &str, after: &str) -> Option<Increase> {
        let (text_before, text_after) = (self.count(before), self.count(after));
        if text_after > text_before {
            return Some(Increase {
                before: text_before,
                after: text_after,
                in_code: false,
                line: self.first_new_line(before, after),
            });
        }
        let syntax = CommentSyntax::of(path);
        let (before, after) = (syntax.blank_comments(before), syntax.blank_comments(after));
        let (code_before, code_after) = (self.count(&before), self.count(&after));
        (code_after > code_before).then(|| Increase {
            before: code_before,
            after: code_after,
            in_code: true,
            line: self.first_new_line(&before, &after),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<ConfirmationPattern> {
        DEFAULT_CONFIRMATION
            .iter()
            .map(|pattern| ConfirmationPattern::new(pattern).unwrap())
            .collect()
    }

    fn caught(line: &str) -> bool {
        defaults().iter().any(|pattern| pattern.matches(line))
    }

    #[test]
    fn the_defaults_catch_the_common_spellings() {
        for line in [
            "rm -rf build",
            "rm -fr /var/lib/app",
            "sudo rm -Rf \"$DIR\"",
            "rm -r -f out",
            "rm -f -r out",
            "rm --recursive --force out",
            "rm --force --recursive out",
            "rm -rvf out",
            "rm -r old",
            "DROP TABLE users;",
            "drop   database prod",
            "Drop Schema public cascade;",
            "TRUNCATE sessions;",
            "truncate table sessions",
            "DELETE FROM users;",
            "delete from \"users\"",
            "kubectl delete namespace fleet",
            "kubectl --context prod delete ns fleet",
            "kubectl delete pods --all -n fleet",
            "git push --force origin main",
            "git push -f",
            "terraform destroy -auto-approve",
            "az group delete -n rg-prod --yes",
            "mkfs.ext4 /dev/sdb1",
            "dd if=/dev/zero of=/dev/sda bs=1M",
        ] {
            assert!(caught(line), "not caught: {line}");
        }
    }

    #[test]
    fn the_defaults_leave_ordinary_lines_alone() {
        for line in [
            "rm -f build.log",
            "rm build.log",
            "npm run format",
            "DELETE FROM users WHERE id = $1;",
            "SELECT * FROM dropped_items;",
            "kubectl get pods -n fleet",
            "git push origin main",
            "echo 'firmware' > /tmp/rmx",
            "terraform plan",
        ] {
            assert!(!caught(line), "caught: {line}");
        }
    }

    #[test]
    fn plain_patterns_are_literal_and_ignore_case() {
        let pattern = ConfirmationPattern::new("DROP (").unwrap();
        assert!(pattern.matches("drop (x"));
        assert!(!pattern.matches("drop x"));
        let regex = ConfirmationPattern::new(r"re:\bDROP\b").unwrap();
        assert!(regex.matches("drop table"));
        assert!(!regex.matches("dropped"));
        assert!(ConfirmationPattern::new("re:(").is_err());
    }

    #[test]
    fn uncommenting_or_adding_is_an_increase_and_moving_is_not() {
        let pattern = ConfirmationPattern::new("DROP TABLE").unwrap();
        let before = "/*\nDROP TABLE users;\n*/\nSELECT 1;\n";
        let after = "DROP TABLE users;\nSELECT 1;\n";
        assert_eq!(
            pattern.increase("db/clean.sql", before, after),
            Some(Increase {
                before: 0,
                after: 1,
                in_code: true,
                line: Some(1)
            })
        );
        // Out of a comment in SQL is not out of a comment in a text file.
        assert_eq!(pattern.increase("notes.txt", before, after), None);
        assert_eq!(
            pattern.increase("a.sh", "x\n", "x\ndrop table t\n"),
            Some(Increase {
                before: 0,
                after: 1,
                in_code: false,
                line: Some(2)
            })
        );
        let moved = pattern.increase("a.sql", "DROP TABLE a;\nB;\n", "B;\nDROP TABLE a;\n");
        assert_eq!(moved, None);
    }
}
