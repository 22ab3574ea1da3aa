//! The `protect` rule's defaults and content checks: a fix must not weaken the checks that
//! judge it, by deleting or emptying a test, removing its assertions or skipping it.

use std::sync::LazyLock;

use regex::Regex;

/// Test files in the common layouts. The workflow's own check scripts are added to these.
pub const DEFAULT_PROTECT: [&str; 18] = [
    "**/tests/**",
    "**/test/**",
    "**/spec/**",
    "**/__tests__/**",
    "**/e2e/**",
    "**/testdata/**",
    "**/fixtures/**",
    "**/*_test.*",
    "**/*.test.*",
    "**/*_spec.*",
    "**/*.spec.*",
    "**/test_*.py",
    "**/conftest.py",
    "**/*Test.java",
    "**/*Tests.java",
    "**/*Test.kt",
    "**/*Tests.cs",
    "**/*.bats",
];

/// A line that checks something: `assert`, `expect(...)`, `.should`, `refute`, `verify`,
/// Go's `t.Error`/`t.Fatal`, `pytest.raises`, `fail(`.
static ASSERTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(assert|expect|should|refute|verify)\w*|\bt\.(errorf?|fatalf?)\b|\bpytest\.raises\b|\bfail\s*\(",
    )
    .expect("static regex")
});

/// A line that switches a test off.
static SKIP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)@pytest\.mark\.(skip|xfail)|\bunittest\.skip|\b(it|describe|test|context)\.(skip|todo)\b|\bx(it|describe|test)\s*\(|\bt\.skip(now|f)?\s*\(|@(ignore|disabled)\b|#\[ignore\]|\bskip\s*\(",
    )
    .expect("static regex")
});

/// What a patch did to a protected file's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Weakening {
    /// 1-based line in the original file of the first assertion that is gone or changed.
    RemovedAssertion { line: usize, text: String },
    /// 1-based line in the patched file of the first new line that skips tests.
    AddedSkip { line: usize, text: String },
}

/// The first way `after` weakens the checks of `before`, if any.
pub(crate) fn weakening(before: &str, after: &str) -> Option<Weakening> {
    let mut remaining: Vec<&str> = after
        .lines()
        .filter(|line| ASSERTION.is_match(line))
        .map(str::trim)
        .collect();
    for (index, line) in before.lines().enumerate() {
        if !ASSERTION.is_match(line) {
            continue;
        }
        match remaining.iter().position(|kept| *kept == line.trim()) {
            Some(position) => {
                remaining.swap_remove(position);
            }
            None => {
                return Some(Weakening::RemovedAssertion {
                    line: index + 1,
                    text: shown(line),
                });
            }
        }
    }
    let mut old_skips: Vec<&str> = before
        .lines()
        .filter(|line| SKIP.is_match(line))
        .map(str::trim)
        .collect();
    for (index, line) in after.lines().enumerate() {
        if !SKIP.is_match(line) {
            continue;
        }
        match old_skips.iter().position(|old| *old == line.trim()) {
            Some(position) => {
                old_skips.swap_remove(position);
            }
            None => {
                return Some(Weakening::AddedSkip {
                    line: index + 1,
                    text: shown(line),
                });
            }
        }
    }
    None
}

/// A line as a message quotes it: trimmed, and cut after 120 characters (a minified line
/// would drown the message).
fn shown(line: &str) -> String {
    const MAX: usize = 120;
    let line = line.trim();
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

/// Whether `after` keeps none of the lines that made up `before`: what an emptied file, or
/// one overwritten with `--`, U+00A0 or a fresh text, looks like. Lines without a letter or
/// digit (`);`, `}`, blank) do not count as kept content.
pub(crate) fn keeps_no_original_line(before: &str, after: &str) -> bool {
    let substantive = |line: &&str| line.chars().any(char::is_alphanumeric);
    let original: Vec<&str> = before.lines().map(str::trim).filter(substantive).collect();
    !original.is_empty()
        && !after
            .lines()
            .map(str::trim)
            .filter(substantive)
            .any(|line| original.contains(&line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_or_changing_an_assertion_is_weakening() {
        let before = "def test_sum():\n    total = add(1, 2)\n    assert total == 3\n";
        assert_eq!(
            weakening(before, "def test_sum():\n    total = add(1, 2)\n"),
            Some(Weakening::RemovedAssertion {
                line: 3,
                text: "assert total == 3".to_owned()
            })
        );
        assert!(weakening(before, &before.replace("== 3", "== 4")).is_some());
        let long = format!("assert x == '{}'\n", "y".repeat(500));
        let Some(Weakening::RemovedAssertion { text, .. }) = weakening(&long, "") else {
            panic!("a removed assertion");
        };
        assert_eq!(text.chars().count(), 121);
        assert!(weakening(before, &before.replace("    assert", "    # assert")).is_some());
        // Adding code or assertions, or moving them, is fine.
        let more = format!("{before}    assert total > 0\n");
        assert_eq!(weakening(before, &more), None);
        assert_eq!(
            weakening(
                "expect(a).toBe(1);\nexpect(b).toBe(2);\n",
                "expect(b).toBe(2);\nexpect(a).toBe(1);\n"
            ),
            None
        );
    }

    #[test]
    fn a_new_skip_is_weakening() {
        let before = "it('adds', () => {\n  expect(add(1, 2)).toBe(3);\n});\n";
        let after = before.replace("it(", "it.skip(");
        // The changed line removes an assertion-free line and adds a skip.
        assert_eq!(
            weakening(before, &after),
            Some(Weakening::AddedSkip {
                line: 1,
                text: "it.skip('adds', () => {".to_owned()
            })
        );
        assert!(
            weakening(
                "def test_a():\n    pass\n",
                "@pytest.mark.skip\ndef test_a():\n    pass\n"
            )
            .is_some()
        );
    }

    #[test]
    fn replacing_every_line_is_deleting_the_content() {
        let before = "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n";
        assert!(keeps_no_original_line(before, ""));
        assert!(keeps_no_original_line(before, "\u{a0}\n"));
        assert!(keeps_no_original_line(before, "--\n"));
        assert!(keeps_no_original_line(before, "SELECT 1;\n);\n"));
        assert!(!keeps_no_original_line(
            before,
            "  CREATE TABLE t (id int);\n"
        ));
        assert!(!keeps_no_original_line("\n  \n", ""), "nothing to lose");
    }
}
