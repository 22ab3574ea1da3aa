//! Small text helpers every report shares: durations, one-line summaries, output excerpts.

use std::time::Duration;

use crate::engine::decision::Decision;
use crate::engine::events::RunOutcome;

/// `0.4s`, `12.3s`, `2m 05s`, `1h 02m`: short enough for a console column.
pub(crate) fn human_duration(duration: Duration) -> String {
    let whole_seconds = duration.as_secs();
    if whole_seconds < 60 {
        format!("{:.1}s", duration.as_secs_f64())
    } else if whole_seconds < 3600 {
        format!("{}m {:02}s", whole_seconds / 60, whole_seconds % 60)
    } else {
        format!(
            "{}h {:02}m",
            whole_seconds / 3600,
            (whole_seconds % 3600) / 60
        )
    }
}

pub(crate) fn outcome_words(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::SucceededWithIssues => "succeeded with issues",
        RunOutcome::Failed => "failed",
        RunOutcome::Interrupted => "interrupted",
    }
}

/// `1 iteration`, `3 iterations`.
pub(crate) fn iterations_phrase(count: u32) -> String {
    if count == 1 {
        "1 iteration".to_owned()
    } else {
        format!("{count} iterations")
    }
}

/// Collapses all whitespace (newlines included) to single spaces, drops other control
/// characters (a message from a script must not move the cursor or change colours), and
/// cuts the text to `max_chars`, so any message fits on one line of a log or a table cell.
pub(crate) fn one_line(text: &str, max_chars: usize) -> String {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() {
            line.push(' ');
        }
        line.extend(word.chars().filter(|c| !c.is_control()));
    }
    match line.char_indices().nth(max_chars) {
        Some((cut, _)) => {
            line.truncate(cut);
            line.push('…');
            line
        }
        None => line,
    }
}

/// The one line a `Decision` shows as in the console and `run.log` (its
/// [`Decision::summary`], cut short). The full detail always lands in `audit.jsonl`.
pub(crate) fn decision_summary(decision: &Decision) -> String {
    const MAX_CHARS: usize = 160;
    one_line(&decision.summary(), MAX_CHARS)
}

/// The last `max_lines` lines of `output`, at most `max_bytes` long (cut at a char boundary):
/// the part of a failing step's output that explains the failure.
pub(crate) fn output_excerpt(output: &str, max_lines: usize, max_bytes: usize) -> &str {
    let trimmed = output.trim_end();
    let mut start = 0;
    // Walk back over `max_lines` line breaks; `rmatch_indices` sees the last one first.
    for (seen, (index, _)) in trimmed.rmatch_indices('\n').enumerate() {
        if seen + 1 == max_lines {
            start = index + 1;
            break;
        }
    }
    let mut excerpt = &trimmed[start..];
    if excerpt.len() > max_bytes {
        let mut cut = excerpt.len() - max_bytes;
        while !excerpt.is_char_boundary(cut) {
            cut += 1;
        }
        excerpt = &excerpt[cut..];
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decision::StopCause;

    #[test]
    fn durations_read_naturally_at_every_scale() {
        assert_eq!(human_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m 05s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h 02m");
    }

    #[test]
    fn one_line_collapses_whitespace_and_cuts_long_text() {
        assert_eq!(one_line("a\n  b\tc ", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ééé", 3), "ééé");
        assert_eq!(one_line("\u{1b}[2Jred\u{7}", 10), "[2Jred");
    }

    #[test]
    fn decision_summary_prefers_readable_fields() {
        let stop = Decision::Stop {
            cause: StopCause::Budget,
            reason: "token budget\n  used up".to_owned(),
            fingerprint: Some("3f2a9c".to_owned()),
        };
        assert_eq!(decision_summary(&stop), "token budget used up");
        let retry = Decision::StepRetry {
            step: "test".to_owned(),
            attempt: 2,
            of: 3,
            previous: "exit code 1".to_owned(),
        };
        assert_eq!(
            decision_summary(&retry),
            r#"attempt=2 of=3 previous="exit code 1" step=test"#
        );
        let long = Decision::OnGiveUp {
            reason: "x".repeat(200),
            steps: Vec::new(),
        };
        assert_eq!(decision_summary(&long).chars().count(), 161);
    }

    #[test]
    fn excerpt_keeps_the_last_lines_within_the_byte_limit() {
        let output = "one\ntwo\nthree\nfour\n";
        assert_eq!(output_excerpt(output, 2, 100), "three\nfour");
        assert_eq!(output_excerpt(output, 10, 100), "one\ntwo\nthree\nfour");
        assert_eq!(output_excerpt(output, 10, 4), "four");
        assert_eq!(output_excerpt("aé", 1, 2), "é");
        assert_eq!(output_excerpt("", 3, 10), "");
    }
}
