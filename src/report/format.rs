//! Small text helpers every report shares: durations, one-line summaries, output excerpts.

use std::time::Duration;

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

/// The one line a `Decision` shows as in the console and `run.log`.
///
/// By convention a decision's `detail` carries a human-readable `summary` (or `reason`,
/// `message`, `verdict`, `failure`) string; without one its top-level fields are shown as
/// `key=value`, cut short. The full detail always lands in `audit.jsonl`.
pub(crate) fn decision_summary(detail: &serde_json::Value) -> String {
    const MAX_CHARS: usize = 160;
    let readable = ["summary", "reason", "message", "verdict", "failure"]
        .iter()
        .find_map(|key| detail.get(key).and_then(serde_json::Value::as_str));
    match (readable, detail) {
        (Some(text), _) => one_line(text, MAX_CHARS),
        (None, serde_json::Value::Null) => String::new(),
        (None, serde_json::Value::String(text)) => one_line(text, MAX_CHARS),
        (None, serde_json::Value::Object(fields)) => {
            let pairs: Vec<String> = fields
                .iter()
                .map(|(key, value)| match value {
                    serde_json::Value::String(text) if !text.contains(char::is_whitespace) => {
                        format!("{key}={text}")
                    }
                    other => format!("{key}={other}"),
                })
                .collect();
            one_line(&pairs.join(" "), MAX_CHARS)
        }
        (None, other) => one_line(&other.to_string(), MAX_CHARS),
    }
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
        let detail = serde_json::json!({"verdict": "approved", "tokens": {"prompt": 3}});
        assert_eq!(decision_summary(&detail), "approved");
        let detail = serde_json::json!({"attempt": 2, "previous": "exit code 1", "step": "test"});
        assert_eq!(
            decision_summary(&detail),
            r#"attempt=2 previous="exit code 1" step=test"#
        );
        assert_eq!(decision_summary(&serde_json::json!([1, 2])), "[1,2]");
        assert_eq!(decision_summary(&serde_json::Value::Null), "");
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
