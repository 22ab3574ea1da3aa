//! Log excerpts for the fixer: the first error lines with their context, then the tail, within
//! a character budget. A model repairs from the failing lines, not from a 50 MB build log.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// Lines that usually carry the cause of a failure.
static ERROR_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \berror\b | \berr! | \bfailed\b | \bfailure\b | \bFAIL\b | panicked | exception
        | traceback | \bfatal\b | assert | cannot\ find | could\ not | not\ found
        | permission\ denied | connection\ refused | timed\ out | undefined
        | crashloopbackoff | imagepullbackoff | errimagepull | oomkilled | unhealthy
        | [✗✖✘]",
    )
    .unwrap_or_else(|_| unreachable!("constant pattern"))
});

static ANSI_ESCAPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
        .unwrap_or_else(|_| unreachable!("constant pattern"))
});

const CONTEXT_BEFORE: usize = 3;
const CONTEXT_AFTER: usize = 6;
const MAX_LINE_CHARS: usize = 400;
/// Share of the budget the error windows may take; the tail gets the rest.
const ERROR_SHARE: f64 = 0.6;

/// Colour codes and carriage-return progress bars cost tokens and carry nothing.
pub fn clean_log(text: &str) -> String {
    let text = ANSI_ESCAPE.replace_all(text, "");
    text.lines()
        .map(|line| {
            line.rsplit('\r')
                .find(|part| !part.is_empty())
                .unwrap_or("")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The excerpt of `log` to show the fixer: numbered lines, gaps marked, at most about
/// `budget_chars` characters. Empty when the log is empty.
pub fn log_excerpt(log: &str, budget_chars: usize) -> String {
    let cleaned = clean_log(log);
    let lines: Vec<&str> = cleaned.lines().collect();
    if lines.is_empty() || budget_chars == 0 {
        return String::new();
    }
    let width = lines.len().to_string().len();
    let line_cost = |i: usize| lines[i].chars().count().min(MAX_LINE_CHARS) + width + 4;

    let whole: usize = (0..lines.len()).map(line_cost).sum();
    if whole <= budget_chars {
        return render(&lines, std::slice::from_ref(&(0..lines.len())), width);
    }

    // Each gap costs a `... N lines omitted ...` line; one is reserved for the gap before the tail.
    let gap_cost = width + 34;
    let budget_chars = budget_chars.saturating_sub(gap_cost);
    // First error windows, in order, while they fit their share.
    let error_budget = (budget_chars as f64 * ERROR_SHARE) as usize;
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut used = 0;
    for (index, _) in lines
        .iter()
        .enumerate()
        .filter(|(_, line)| ERROR_LINE.is_match(line))
    {
        let start = index.saturating_sub(CONTEXT_BEFORE);
        let end = (index + CONTEXT_AFTER + 1).min(lines.len());
        let uncovered_from = ranges.last().map_or(start, |last| last.end.max(start));
        if uncovered_from >= end {
            continue;
        }
        let merges = ranges.last().is_some_and(|last| start <= last.end);
        let cost: usize =
            (uncovered_from..end).map(line_cost).sum::<usize>() + if merges { 0 } else { gap_cost };
        if used + cost > error_budget {
            break;
        }
        used += cost;
        match ranges.last_mut() {
            Some(last) if merges => last.end = end,
            _ => ranges.push(start..end),
        }
    }

    // Then the tail, as far back as the remaining budget allows; lines already shown cost
    // nothing, so an error on the last line does not leave the tail empty.
    let covered = |index: usize| ranges.iter().any(|r| r.contains(&index));
    let mut tail_start = lines.len();
    while tail_start > 0 {
        let cost = if covered(tail_start - 1) {
            0
        } else {
            line_cost(tail_start - 1)
        };
        if used + cost > budget_chars {
            break;
        }
        used += cost;
        tail_start -= 1;
    }
    ranges.push(tail_start..lines.len());
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    render(&lines, &merged, width)
}

fn render(lines: &[&str], ranges: &[Range<usize>], width: usize) -> String {
    let mut out = String::new();
    let mut next = 0;
    for range in ranges {
        if range.start > next {
            let _ = writeln!(
                out,
                "{:>width$} | ... {} lines omitted ...",
                "",
                range.start - next
            );
        }
        for index in range.clone() {
            let line = lines[index];
            let shown: String = line.chars().take(MAX_LINE_CHARS).collect();
            let cut = if shown.len() < line.len() {
                " [line cut]"
            } else {
                ""
            };
            let _ = writeln!(out, "{:>width$} | {shown}{cut}", index + 1);
        }
        next = range.end;
    }
    if next < lines.len() {
        let _ = writeln!(
            out,
            "{:>width$} | ... {} lines omitted ...",
            "",
            lines.len() - next
        );
    }
    out
}

/// `text` cut to at most `max_chars` characters, keeping the end (where failures are) and
/// saying so.
pub fn keep_tail(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_owned();
    }
    let marker = "[... earlier text cut ...]\n";
    let keep = max_chars.saturating_sub(marker.len());
    let tail: String = text.chars().skip(count - keep).collect();
    format!("{marker}{tail}")
}

/// `text` cut to at most `max_chars` characters, keeping the start.
pub fn keep_head(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let marker = "\n[... rest cut ...]";
    let head: String = text
        .chars()
        .take(max_chars.saturating_sub(marker.len()))
        .collect();
    format!("{head}{marker}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy_log() -> String {
        let mut log = String::new();
        for i in 1..=2000 {
            match i {
                500 => log.push_str("error[E0308]: mismatched types\n"),
                501 => log.push_str("  --> src/main.rs:12:5\n"),
                _ => {
                    let _ = writeln!(log, "\x1b[32mcompiling\x1b[0m crate number {i}");
                }
            }
        }
        log.push_str("test result: FAILED. 1 passed; 1 failed\n");
        log
    }

    #[test]
    fn small_logs_are_shown_whole() {
        let excerpt = log_excerpt("one\ntwo\n", 1000);
        assert_eq!(excerpt, "1 | one\n2 | two\n");
    }

    #[test]
    fn big_logs_keep_first_errors_and_tail_within_budget() {
        let excerpt = log_excerpt(&noisy_log(), 2000);
        assert!(excerpt.len() <= 2000, "{} chars", excerpt.len());
        assert!(
            excerpt.contains(" 500 | error[E0308]: mismatched types"),
            "{excerpt}"
        );
        assert!(excerpt.contains(" 501 |   --> src/main.rs:12:5"));
        assert!(excerpt.contains("2001 | test result: FAILED."));
        assert!(excerpt.contains("lines omitted"));
        assert!(!excerpt.contains('\x1b'), "colour codes are stripped");
        assert!(!excerpt.contains(" 100 | "), "unrelated lines are left out");
    }

    #[test]
    fn an_error_on_the_last_line_still_gets_a_tail() {
        let mut log = "step output line\n".repeat(1000);
        log.push_str("npm ERR! code ELIFECYCLE\n");
        let excerpt = log_excerpt(&log, 1000);
        assert!(
            excerpt.contains("1001 | npm ERR! code ELIFECYCLE"),
            "{excerpt}"
        );
        assert!(
            excerpt.lines().count() > 20,
            "the tail fills the budget:\n{excerpt}"
        );
        assert!(excerpt.len() <= 1000);
    }

    #[test]
    fn progress_bars_keep_their_last_state() {
        assert_eq!(clean_log("10%\r50%\r100%\ndone"), "100%\ndone");
    }

    #[test]
    fn cutting_marks_what_was_removed() {
        assert_eq!(keep_tail("abcdefghij", 100), "abcdefghij");
        let cut = keep_tail(&"x".repeat(100), 40);
        assert!(cut.starts_with("[... earlier text cut ...]\n"));
        assert!(cut.chars().count() <= 40);
        let head = keep_head(&"y".repeat(100), 30);
        assert!(head.ends_with("[... rest cut ...]") && head.chars().count() <= 30);
    }
}
