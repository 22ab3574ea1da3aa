//! `summary.md`: the run on one page, for `##vso[task.uploadsummary]` or a pull request
//! comment: the outcome, a table of steps × iterations, each iteration's failure, decisions,
//! and links (relative to the artifacts folder) to the logs and the other reports.
//!
//! Rewritten after every iteration and at the end, so an interrupted run leaves one too.

use std::fmt::Write as _;
use std::io;
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;

use super::Reporter;
use super::atomic_file::write_atomically;
use super::format::{decision_summary, human_duration, one_line, outcome_words};
use super::run_record::{RunRecord, StepRecord};
use crate::engine::events::{Event, RunOutcome};
use crate::steps::StepStatus;
use crate::workflow::model::Phase;

const MAX_CELL_CHARS: usize = 120;

pub struct SummaryReport {
    path: PathBuf,
    record: RunRecord,
}

impl SummaryReport {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            record: RunRecord::default(),
        }
    }

    fn write(&self) -> io::Result<()> {
        write_atomically(&self.path, summary(&self.record).as_bytes())
    }
}

impl Reporter for SummaryReport {
    fn name(&self) -> &str {
        "summary.md"
    }

    fn on_event(&mut self, event: &Event) -> io::Result<()> {
        self.record.apply(event);
        match event {
            Event::IterationFinished { .. } | Event::RunFinished { .. } => self.write(),
            _ => Ok(()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.write()
    }
}

/// One cell of the steps × iterations table.
enum Cell<'a> {
    Finished(&'a StepRecord),
    Unfinished,
}

fn summary(record: &RunRecord) -> String {
    let artifacts_dir = record
        .start
        .as_ref()
        .map(|start| start.artifacts_dir.as_path());
    let outcome = record.outcome();
    let mut page = String::new();
    // `write!` into a String cannot fail; the results are ignored on purpose throughout.
    let _ = writeln!(
        page,
        "# {} {} {}\n",
        outcome_icon(outcome),
        escape(record.workflow()),
        outcome_words(outcome)
    );
    let _ = writeln!(page, "| | |\n|---|---|");
    let _ = writeln!(page, "| reason | {} |", cell_text(record.reason()));
    if let Some(start) = &record.start {
        if let Some(environment) = &start.environment {
            let _ = writeln!(page, "| environment | {} |", escape(environment));
        }
        let _ = writeln!(
            page,
            "| iterations | {} of at most {} |",
            record.iteration_count(),
            start.max_iterations
        );
    } else {
        let _ = writeln!(page, "| iterations | {} |", record.iteration_count());
    }
    let _ = writeln!(page, "| duration | {} |", human_duration(record.duration()));
    if let Some(start) = &record.start {
        let _ = writeln!(page, "| run | `{}` |", escape(&start.run_id));
    }

    // Rows in the order steps first appear; one column per iteration.
    let mut rows: IndexMap<(Phase, &str), Vec<(u32, Cell<'_>)>> = IndexMap::new();
    for iteration in &record.iterations {
        for step in &iteration.steps {
            rows.entry((step.phase, step.step_id.as_str()))
                .or_default()
                .push((iteration.number, Cell::Finished(step)));
        }
        for step in &iteration.unfinished {
            rows.entry((step.phase, step.step_id.as_str()))
                .or_default()
                .push((iteration.number, Cell::Unfinished));
        }
    }
    if !rows.is_empty() {
        let _ = write!(page, "\n## Steps\n\n| step |");
        for iteration in &record.iterations {
            let _ = write!(page, " iteration {} |", iteration.number);
        }
        let _ = write!(page, "\n|---|");
        for _ in &record.iterations {
            page.push_str("---|");
        }
        page.push('\n');
        for ((phase, step_id), cells) in &rows {
            let label = match phase {
                Phase::Steps => escape(step_id),
                other => format!("{}: {}", other.key(), escape(step_id)),
            };
            let _ = write!(page, "| {label} |");
            for iteration in &record.iterations {
                let text: Vec<String> = cells
                    .iter()
                    .filter(|(number, _)| *number == iteration.number)
                    .map(|(_, cell)| cell_markdown(cell, artifacts_dir))
                    .collect();
                let _ = write!(page, " {} |", text.join("<br>"));
            }
            page.push('\n');
        }
    }

    let failures: Vec<_> = record
        .iterations
        .iter()
        .filter_map(|iteration| {
            let failure = iteration.result.as_ref()?.failure.as_ref()?;
            Some((iteration.number, failure))
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(page, "\n## Failures\n");
        for (number, failure) in failures {
            let _ = writeln!(page, "- iteration {number}: {}", cell_text(failure));
        }
    }

    if !record.decisions.is_empty() {
        let _ = writeln!(page, "\n## Decisions\n");
        for decision in &record.decisions {
            let summary = decision_summary(&decision.decision);
            let _ = write!(
                page,
                "- iteration {}: `{}`",
                decision.iteration,
                escape(decision.decision.kind())
            );
            if !summary.is_empty() {
                let _ = write!(page, ": {}", escape(&summary));
            }
            page.push('\n');
        }
    }

    let _ = writeln!(
        page,
        "\n## Artifacts\n\n[junit.xml](junit.xml) · [run.log](run.log) · \
         [audit.jsonl](audit.jsonl) · [metrics.json](metrics.json) · step logs in `steps/`"
    );
    page
}

fn outcome_icon(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Succeeded => "✅",
        RunOutcome::SucceededWithIssues => "⚠️",
        RunOutcome::Failed => "❌",
        RunOutcome::Interrupted => "⛔",
    }
}

fn cell_markdown(cell: &Cell<'_>, artifacts_dir: Option<&Path>) -> String {
    let step = match cell {
        Cell::Finished(step) => step,
        Cell::Unfinished => return "⛔ interrupted".to_owned(),
    };
    let outcome = &step.outcome;
    let (icon, words) = match outcome.status {
        StepStatus::Passed => ("✅", String::new()),
        StepStatus::Failed if !step.required => (
            "⚠️",
            format!("{} (not required)", cell_text(&outcome.message)),
        ),
        StepStatus::Failed => ("❌", cell_text(&outcome.message)),
        StepStatus::Inconclusive => (
            "❔",
            format!("inconclusive: {}", cell_text(&outcome.message)),
        ),
        StepStatus::Skipped => return "⏭️ skipped".to_owned(),
        StepStatus::Cancelled => ("⛔", "cancelled".to_owned()),
    };
    let status = if words.is_empty() {
        icon.to_owned()
    } else {
        format!("{icon} {words}")
    };
    let status = match &outcome.log_path {
        Some(log_path) => format!("[{status}]({})", relative_link(log_path, artifacts_dir)),
        None => status,
    };
    format!("{status} {}", human_duration(step.duration))
}

/// A link from `summary.md` (in the artifacts folder) to `path`, with `/` separators.
fn relative_link(path: &Path, artifacts_dir: Option<&Path>) -> String {
    let relative = artifacts_dir
        .and_then(|dir| path.strip_prefix(dir).ok())
        .unwrap_or(path);
    let parts: Vec<_> = relative
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_string_lossy()),
            _ => None,
        })
        .collect();
    parts.join("/").replace(' ', "%20")
}

/// Text from a step or an agent, safe in a table cell: one line, cut short, escaped.
fn cell_text(text: &str) -> String {
    escape(&one_line(text, MAX_CELL_CHARS))
}

/// Keeps text from breaking the table or being read as HTML.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_events::{crashed_run, two_iteration_run};

    fn replay(events: &[Event]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        let mut summary = SummaryReport::new(&path);
        for event in events {
            summary.on_event(event).unwrap();
        }
        summary.finish().unwrap();
        std::fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn the_table_has_a_row_per_step_and_a_column_per_iteration() {
        let page = replay(&two_iteration_run());
        assert!(page.starts_with("# ✅ fleet-deploy succeeded\n"), "{page}");
        assert!(page.contains("| step | iteration 1 | iteration 2 |\n|---|---|---|\n"));
        assert!(page.contains(
            "| test | [❌ exit code 2](steps/1-test.log) 1.2s | [✅](steps/2-test.log) 1.1s |\n"
        ));
        assert!(page.contains(
            "| lint | [⚠️ exit code 1 (not required)](steps/1-lint.log) 0.3s | \
             [✅](steps/2-lint.log) 0.3s |\n"
        ));
        assert!(page.contains("| deploy | ⏭️ skipped | [✅](steps/2-deploy.log) 4.5s |\n"));
        assert!(page.contains("| repair: propose | [✅](steps/1-propose.log) 4.0s |  |\n"));
        assert!(page.contains("- iteration 1: steps/test: exit code 2\n"));
        insta::assert_snapshot!("summary_two_iterations", page);
    }

    #[test]
    fn an_unfinished_run_is_summarized_as_interrupted() {
        let page = replay(&crashed_run());
        assert!(
            page.starts_with("# ⛔ fleet-deploy interrupted\n"),
            "{page}"
        );
        assert!(page.contains("| reason | the run stopped before it finished |"));
        assert!(page.contains(
            "| smoke | ❔ inconclusive: neither the success nor the failure condition held 1.2s |  |\n"
        ));
        assert!(page.contains("| build | [✅](steps/1-build.log) 2.0s | ⛔ interrupted |\n"));
    }

    #[test]
    fn cell_text_cannot_break_the_table() {
        assert_eq!(cell_text("a | b\n<script>"), "a \\| b &lt;script&gt;");
    }
}
