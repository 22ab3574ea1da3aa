//! Failure fingerprints: a normalized signature of a failure, so the same root failure is
//! recognized across iterations even when timestamps, durations, line numbers, temp paths,
//! process ids or hex ids in its output differ.

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

/// How many output lines, at most, feed the fingerprint (the error lines, else the tail).
const MAX_LINES: usize = 40;

/// The parts of a failure that identify it.
pub struct FailureSignature<'a> {
    pub step_id: &'a str,
    pub kind: &'a str,
    pub message: &'a str,
    pub output_tail: &'a str,
}

/// A short stable hex digest of the normalized failure.
pub fn fingerprint(failure: &FailureSignature<'_>) -> String {
    let mut hasher = Sha256::new();
    for part in [failure.step_id, failure.kind, &normalize(failure.message)] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for line in significant_lines(failure.output_tail) {
        hasher.update(normalize(line).as_bytes());
        hasher.update([b'\n']);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// Lines that name an error, if there are any; otherwise the last lines of the output.
fn significant_lines(output: &str) -> Vec<&str> {
    static ERROR_LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(error|failed|failure|fatal|panic(ked)?|exception|traceback|assert)")
            .expect("static regex")
    });
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| ERROR_LINE.is_match(l))
        .take(MAX_LINES)
        .collect();
    if errors.is_empty() {
        lines[lines.len().saturating_sub(MAX_LINES)..].to_vec()
    } else {
        errors
    }
}

/// Replaces the volatile parts of a line with placeholders.
pub fn normalize(text: &str) -> String {
    // Order matters: specific shapes (timestamps, uuids, paths) before generic numbers.
    static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
        [
            (
                r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
                "<ts>",
            ),
            (r"\b\d{1,2}:\d{2}:\d{2}(\.\d+)?\b", "<time>"),
            (
                r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
                "<uuid>",
            ),
            (r"(?i)\b0x[0-9a-f]+\b", "<hex>"),
            (
                r"(/tmp|/var/folders|/private/var|[A-Za-z]:\\Users\\[^\\]+\\AppData\\Local\\Temp)[/\\][^\s:'\x22)]*",
                "<tmp>",
            ),
            (r"(?i)\b(pid|process|thread)[ =:#]*\d+", "$1 <n>"),
            (r"\[\d+\]", "[<n>]"),
            (r"\b\d+(\.\d+)?\s*(ns|µs|us|ms|s|sec|secs|seconds|m|min|minutes|h)\b", "<dur>"),
            (r":\d+:\d+\b", ":<line>:<col>"),
            (r"(?i)\b(line|ln|column|col)\s*\d+", "$1 <n>"),
            (r":\d+\b", ":<line>"),
        ]
        .into_iter()
        .map(|(pattern, replacement)| (Regex::new(pattern).expect("static regex"), replacement))
        .collect()
    });
    // Commit hashes, container ids, request ids: long hex words with at least one digit.
    // Runs last so the uuid and timestamp rules see their shapes intact.
    static HEX_ID: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\b[0-9a-f]{7,}\b").expect("static regex"));
    let mut text = text.trim().to_owned();
    for (pattern, replacement) in RULES.iter() {
        if let std::borrow::Cow::Owned(replaced) = pattern.replace_all(&text, *replacement) {
            text = replaced;
        }
    }
    HEX_ID
        .replace_all(&text, |caps: &regex::Captures<'_>| {
            let word = &caps[0];
            if word.bytes().any(|b| b.is_ascii_digit()) {
                "<id>".to_owned()
            } else {
                word.to_owned()
            }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(message: &str, tail: &str) -> String {
        fingerprint(&FailureSignature {
            step_id: "test",
            kind: "gate",
            message,
            output_tail: tail,
        })
    }

    #[test]
    fn volatile_parts_do_not_change_the_fingerprint() {
        let first = "2026-11-22T07:30:01.123Z run started pid 4242\n\
                     src/lib.rs:10:5 error: expected `;` (took 1.2s)\n\
                     wrote /tmp/tmp.Xa12bc/out.txt, build 3f9a1c0d\n";
        let second = "2026-11-23T11:02:59.999Z run started pid 77\n\
                      src/lib.rs:12:9 error: expected `;` (took 340ms)\n\
                      wrote /tmp/tmp.Qz98yy/out.txt, build a1b2c3d4\n";
        assert_eq!(fp("exit code 1", first), fp("exit code 1", second));
    }

    #[test]
    fn different_errors_differ() {
        let a = fp("exit code 1", "error: expected `;`\n");
        let b = fp(
            "exit code 1",
            "error: cannot find value `x` in this scope\n",
        );
        assert_ne!(a, b);
        assert_ne!(fp("exit code 1", ""), fp("exit code 2", ""));
    }

    #[test]
    fn error_lines_win_over_noise_in_the_tail() {
        let noisy_a = "error: test foo failed\nprogress 10%\n";
        let noisy_b = "progress 55%\nerror: test foo failed\nprogress 90%\n";
        assert_eq!(fp("exit code 1", noisy_a), fp("exit code 1", noisy_b));
    }

    #[test]
    fn normalize_examples() {
        assert_eq!(normalize("at main.py:42"), "at main.py:<line>");
        assert_eq!(normalize("pid 123 died"), "pid <n> died");
        assert_eq!(normalize("took 12ms"), "took <dur>");
        assert_eq!(
            normalize("id 123e4567-e89b-12d3-a456-426614174000"),
            "id <uuid>"
        );
        assert_eq!(normalize("expected 3 got 4"), "expected 3 got 4");
    }
}
