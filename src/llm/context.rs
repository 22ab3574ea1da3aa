//! What the engine hands an agent: the failure, the step that failed, and what happened in
//! earlier repair attempts of this run.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::workflow::model::Step;

/// Logs bigger than this are read from their end: the failure is usually near it.
const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;
const MAX_STEP_LINES: usize = 60;

/// The failure being repaired, as the failing step reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failure {
    pub step_id: String,
    /// The step kind (`gate`, `deploy`, `verify`, ...).
    pub kind: String,
    pub message: String,
    pub exit_code: Option<i32>,
    /// The step's full log; the excerpt is taken from it when readable.
    pub log_path: Option<PathBuf>,
    /// The last lines of output, used when the log cannot be read.
    pub output_tail: String,
    /// HTTP responses, pod logs and events.
    pub evidence: Option<String>,
}

impl Failure {
    /// The step's log (its end, if huge), or the output tail when there is no readable log.
    pub fn log_text(&self) -> String {
        self.log_path
            .as_deref()
            .and_then(read_log_end)
            .filter(|text| !text.trim().is_empty())
            .unwrap_or_else(|| self.output_tail.clone())
    }
}

fn read_log_end(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len > MAX_LOG_BYTES {
        file.seek(SeekFrom::Start(len - MAX_LOG_BYTES)).ok()?;
    }
    let mut bytes = Vec::new();
    file.take(MAX_LOG_BYTES).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Everything the fixer is told about one repair attempt.
#[derive(Clone, Debug, Default)]
pub struct FixContext {
    pub failure: Failure,
    /// The failing step as written in the workflow ([`step_definition`]).
    pub step_definition: String,
    /// The repository: source snippets are read from here and only here.
    pub workdir: PathBuf,
    pub iteration: u32,
    /// Diffs proposed earlier in this run, oldest first.
    pub previous_patches: Vec<String>,
    /// The reviewer's suggestion after its last rejection.
    pub reviewer_suggestion: Option<String>,
    /// Why the last proposed patch could not be applied (reported back once).
    pub apply_error: Option<String>,
}

/// Everything the reviewer is told about a proposed patch.
#[derive(Clone, Debug, Default)]
pub struct ReviewContext {
    pub failure: Failure,
    pub step_definition: String,
    pub iteration: u32,
    /// The patch as the fixer proposed it (after policy checks).
    pub patch: String,
    /// The deterministic policy's decision, in words (`allowed: 1 file changed, 3 lines`).
    pub policy: String,
}

/// The step as the user wrote it: its lines from the workflow file when the span knows them,
/// else its id and kind.
pub fn step_definition(step: &Step) -> String {
    source_lines(step).unwrap_or_else(|| {
        format!(
            "- id: {}\n  {}: ...  # defined without source text",
            step.id.value,
            step.kind.key()
        )
    })
}

fn source_lines(step: &Step) -> Option<String> {
    let file = step.span.file.as_deref()?;
    let first = file.line(step.span.line)?;
    let indent = |line: &str| line.len() - line.trim_start_matches([' ', '-']).len();
    let base = indent(first);
    let mut lines = vec![first];
    let mut number = step.span.line + 1;
    while let Some(line) = file.line(number) {
        if !line.trim().is_empty() && line.len() - line.trim_start().len() < base {
            break;
        }
        if !line.trim().is_empty() && line.trim_start().starts_with("- ") && indent(line) <= base {
            break;
        }
        lines.push(line);
        number += 1;
        if lines.len() >= MAX_STEP_LINES {
            break;
        }
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    Some(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::model::StepKind;
    use crate::workflow::span::{SourceFile, Span, Spanned};
    use crate::workflow::step_config::fix::FixConfig;

    fn step_at(text: &str, line: usize) -> Step {
        Step {
            id: Spanned::detached("build".to_owned()),
            name: None,
            kind: StepKind::Fix(FixConfig {
                agent: Spanned::detached("fixer".to_owned()),
            }),
            required: true,
            condition: None,
            timeout: None,
            retries: 0,
            span: Span {
                file: Some(SourceFile::new("wf.yaml", text)),
                line,
                column: 5,
                len: 0,
            },
            template: None,
        }
    }

    #[test]
    fn step_definition_is_the_steps_own_lines() {
        let text = "steps:\n  - id: lint\n    gate: npm run lint\n  - id: build\n    gate:\n      run: npm run build\n\n    timeout: 20m\n  - id: deploy\n";
        assert_eq!(
            step_definition(&step_at(text, 4)),
            "  - id: build\n    gate:\n      run: npm run build\n\n    timeout: 20m"
        );
    }

    #[test]
    fn step_without_source_is_described_by_id_and_kind() {
        let mut step = step_at("", 1);
        step.span = Span::detached();
        assert_eq!(
            step_definition(&step),
            "- id: build\n  fix: ...  # defined without source text"
        );
    }

    #[test]
    fn log_text_falls_back_to_the_output_tail() {
        let failure = Failure {
            log_path: Some(PathBuf::from("/nonexistent/agent-orch.log")),
            output_tail: "tail".to_owned(),
            ..Failure::default()
        };
        assert_eq!(failure.log_text(), "tail");
    }
}
