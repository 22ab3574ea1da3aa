//! The Azure Pipelines view of a run, on stdout where the agent reads logging commands.
//!
//! - a `##[section]` line per iteration with `task.setprogress`;
//! - a `##[group]` per step run (`iteration 2 · test`) closed by `##[endgroup]` when the step
//!   finishes, so each step's streamed output folds under its name. The agent does not nest
//!   groups, hence one group per step and iteration rather than groups inside an iteration group;
//! - `task.logissue` at the end of the run: `type=error` with the workflow file and the step's
//!   line for each required failure of a run that failed, `type=warning` for optional steps that
//!   failed and for required failures of earlier iterations (a later one ran again);
//! - after every other report is written: `artifact.upload` of the artifacts folder,
//!   `task.uploadsummary` of `summary.md` and `task.complete` with the run's result.
//!
//! The JUnit file is not published from here: the pipeline's `PublishTestResults@2` step does it
//! (with `succeededOrFailed()`), and publishing twice would count every test twice.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::Reporter;
use super::format::{decision_summary, human_duration, one_line, outcome_words};
use crate::ado::logging::{self, Issue, LoggingCommand, TaskResult};
use crate::engine::events::{Event, RunOutcome};
use crate::steps::StepStatus;
use crate::workflow::model::{Phase, Workflow};

const MAX_MESSAGE_CHARS: usize = 300;

/// Where each step is written: the file and line `task.logissue` points at.
#[derive(Clone, Debug, Default)]
pub struct StepPositions(HashMap<String, (PathBuf, u32)>);

impl StepPositions {
    /// Every step's position; a step from a template points into the template file.
    pub fn of(workflow: &Workflow) -> Self {
        Self(
            workflow
                .all_steps()
                .map(|step| {
                    let file = step
                        .span
                        .file
                        .as_ref()
                        .map_or_else(|| workflow.path.clone(), |file| file.path.clone());
                    let line = u32::try_from(step.span.line).unwrap_or(0);
                    (step.id.value.clone(), (file, line))
                })
                .collect(),
        )
    }

    /// Paths under `root` (the pipeline's sources directory) made relative to it, as the
    /// agent expects `sourcepath` for annotations; `filePath` inputs arrive absolute.
    pub fn relative_to(mut self, root: Option<&Path>) -> Self {
        if let Some(root) = root {
            for (path, _) in self.0.values_mut() {
                if let Ok(relative) = path.strip_prefix(root) {
                    *path = relative.to_path_buf();
                }
            }
        }
        self
    }

    fn get(&self, step_id: &str) -> Option<(&Path, u32)> {
        self.0
            .get(step_id)
            .map(|(path, line)| (path.as_path(), *line))
    }
}

/// A failed step, kept until the run's end decides whether it is an error or a warning.
struct StepFailure {
    iteration: u32,
    step_id: String,
    text: String,
}

/// Writes Azure Pipelines logging commands for the run's events.
pub struct PipelineConsole<W: Write> {
    out: W,
    positions: StepPositions,
    run_id: String,
    artifacts_dir: Option<PathBuf>,
    max_iterations: u32,
    group_open: bool,
    required_failures: Vec<StepFailure>,
    outcome: Option<(RunOutcome, String)>,
}

impl PipelineConsole<io::Stdout> {
    pub fn stdout(positions: StepPositions) -> Self {
        Self::new(io::stdout(), positions)
    }
}

impl<W: Write> PipelineConsole<W> {
    pub fn new(out: W, positions: StepPositions) -> Self {
        Self {
            out,
            positions,
            run_id: String::new(),
            artifacts_dir: None,
            max_iterations: 1,
            group_open: false,
            required_failures: Vec::new(),
            outcome: None,
        }
    }

    pub fn into_writer(self) -> W {
        self.out
    }

    fn command(&mut self, command: &LoggingCommand) -> io::Result<()> {
        writeln!(self.out, "{command}")
    }

    fn close_group(&mut self) -> io::Result<()> {
        if self.group_open {
            self.group_open = false;
            writeln!(self.out, "{}", logging::endgroup())?;
        }
        Ok(())
    }

    fn issue_at(&self, step_id: &str, issue: Issue) -> Issue {
        match self.positions.get(step_id) {
            Some((path, line)) if line > 0 => issue.at(path, line, 1),
            _ => issue,
        }
    }

    fn step_finished(&mut self, event: &Event) -> io::Result<()> {
        let Event::StepFinished {
            iteration,
            phase,
            step_id,
            step_name,
            required,
            duration,
            outcome,
            ..
        } = event
        else {
            return Ok(());
        };
        let (iteration, phase, required) = (*iteration, *phase, *required);
        let elapsed = human_duration(*duration);
        let message = one_line(&outcome.message, MAX_MESSAGE_CHARS);
        let failed = matches!(
            outcome.status,
            StepStatus::Failed | StepStatus::Inconclusive
        );
        if self.group_open {
            let word = match outcome.status {
                StepStatus::Passed => "passed",
                StepStatus::Failed => "failed",
                StepStatus::Inconclusive => "inconclusive",
                StepStatus::Skipped => "skipped",
                StepStatus::Cancelled => "cancelled",
            };
            if message.is_empty() {
                writeln!(self.out, "{step_name}: {word} ({elapsed})")?;
            } else {
                writeln!(self.out, "{step_name}: {word} ({elapsed}): {message}")?;
            }
            self.close_group()?;
        }
        if failed && phase == Phase::OnSuccess {
            // The run passed; what failed after it (delivering the fix) is a warning on the
            // summary page, with its own words (the permission to grant, say).
            let text = format!("{step_name} failed after the run succeeded: {message}");
            let issue = self.issue_at(step_id, Issue::warning(text));
            return self.command(&LoggingCommand::log_issue(&issue));
        }
        if !failed || phase != Phase::Steps {
            return Ok(());
        }
        let text = format!("{step_name} failed in iteration {iteration}: {message}");
        if required {
            self.required_failures.push(StepFailure {
                iteration,
                step_id: step_id.to_owned(),
                text,
            });
            Ok(())
        } else {
            let issue = self.issue_at(step_id, Issue::warning(format!("{text} (not required)")));
            self.command(&LoggingCommand::log_issue(&issue))
        }
    }

    /// Errors for the failures that ended a failed run; warnings for earlier iterations' failures,
    /// which a later iteration ran again.
    fn report_failures(&mut self, outcome: RunOutcome) -> io::Result<()> {
        let last_iteration = self.required_failures.last().map(|f| f.iteration);
        let failures = std::mem::take(&mut self.required_failures);
        for failure in failures {
            let fatal = matches!(outcome, RunOutcome::Failed | RunOutcome::Interrupted)
                && Some(failure.iteration) == last_iteration;
            let issue = if fatal {
                Issue::error(failure.text)
            } else {
                Issue::warning(format!("{} (retried in a later iteration)", failure.text))
            };
            let issue = self.issue_at(&failure.step_id, issue);
            self.command(&LoggingCommand::log_issue(&issue))?;
        }
        Ok(())
    }
}

impl<W: Write> Reporter for PipelineConsole<W> {
    fn name(&self) -> &str {
        "pipeline console"
    }

    fn on_event(&mut self, event: &Event) -> io::Result<()> {
        match event {
            Event::RunStarted {
                run_id,
                workflow,
                environment,
                artifacts_dir,
                max_iterations,
                ..
            } => {
                self.run_id = run_id.clone();
                self.artifacts_dir = Some(artifacts_dir.clone());
                self.max_iterations = (*max_iterations).max(1);
                let environment = environment
                    .as_deref()
                    .map(|e| format!(" · env {e}"))
                    .unwrap_or_default();
                writeln!(
                    self.out,
                    "##[section]{workflow}{environment} · run {run_id}"
                )?;
            }
            Event::IterationStarted { iteration } => {
                self.close_group()?;
                let max = self.max_iterations;
                writeln!(self.out, "##[section]iteration {iteration}/{max}")?;
                let percent = (iteration.saturating_sub(1)).saturating_mul(100) / max;
                self.command(&LoggingCommand::set_progress(
                    percent,
                    &format!("iteration {iteration} of {max}"),
                ))?;
            }
            Event::StepStarted {
                iteration,
                phase,
                step_name,
                ..
            } => {
                self.close_group()?;
                let phase = match phase {
                    Phase::Steps => String::new(),
                    Phase::Repair => " · repair".to_owned(),
                    Phase::OnGiveUp => " · on give up".to_owned(),
                    Phase::OnSuccess => " · on success".to_owned(),
                };
                writeln!(
                    self.out,
                    "{}",
                    logging::group(&format!("iteration {iteration}{phase} · {step_name}"))
                )?;
                self.group_open = true;
            }
            Event::StepFinished { .. } => self.step_finished(event)?,
            Event::IterationFinished { .. } => self.close_group()?,
            Event::Decision { decision, .. } => {
                let summary = one_line(&decision_summary(decision), MAX_MESSAGE_CHARS);
                writeln!(self.out, "◆ {}: {summary}", decision.kind())?;
            }
            Event::OutputsRendered { outputs } => {
                self.close_group()?;
                for (name, value) in outputs {
                    self.command(&LoggingCommand::set_output_variable(name, value))?;
                }
            }
            Event::RunFinished {
                outcome,
                reason,
                iterations,
                ..
            } => {
                self.close_group()?;
                self.report_failures(*outcome)?;
                self.command(&LoggingCommand::set_progress(100, "done"))?;
                writeln!(
                    self.out,
                    "##[section]{} after {iterations} iteration(s): {}",
                    outcome_words(*outcome),
                    one_line(reason, MAX_MESSAGE_CHARS)
                )?;
                self.outcome = Some((*outcome, reason.clone()));
            }
        }
        self.out.flush()
    }

    /// Runs after the file reports are written (it is added last), so the uploads find them.
    fn finish(&mut self) -> io::Result<()> {
        self.close_group()?;
        if let Some(dir) = self.artifacts_dir.clone() {
            // The agent resolves paths from its own working directory, not the task's.
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            let name = format!("agent-orch-{}", self.run_id);
            self.command(&LoggingCommand::upload_artifact("agent-orch", &name, &dir))?;
            let summary = dir.join("summary.md");
            if summary.is_file() {
                self.command(&LoggingCommand::upload_summary(&summary))?;
            }
        }
        let (result, message) = match &self.outcome {
            Some((outcome, reason)) => (TaskResult::from(*outcome), one_line(reason, 200)),
            None => (
                TaskResult::Failed,
                "the run stopped before it finished".to_owned(),
            ),
        };
        self.command(&LoggingCommand::complete(result, &message))?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_events::{crashed_run, two_iteration_run};

    fn replay(events: &[Event], positions: StepPositions) -> String {
        let mut console = PipelineConsole::new(Vec::new(), positions);
        for event in events {
            console.on_event(event).unwrap();
        }
        console.finish().unwrap();
        String::from_utf8(console.into_writer()).unwrap()
    }

    fn positions() -> StepPositions {
        StepPositions(HashMap::from([
            ("lint".to_owned(), (PathBuf::from("workflows/app.yaml"), 12)),
            ("test".to_owned(), (PathBuf::from("workflows/app.yaml"), 13)),
        ]))
    }

    #[test]
    fn two_iterations_snapshot() {
        let output = replay(&two_iteration_run(), positions());
        let cwd = regex::escape(&std::env::current_dir().unwrap().to_string_lossy());
        insta::with_settings!({filters => vec![(cwd.as_str(), "[cwd]")]}, {
            insta::assert_snapshot!("pipeline_two_iterations", output);
        });
    }

    #[test]
    fn groups_open_and_close_around_every_started_step() {
        let output = replay(&two_iteration_run(), positions());
        let opened = output
            .lines()
            .filter(|l| l.starts_with("##[group]"))
            .count();
        let closed = output.lines().filter(|l| *l == "##[endgroup]").count();
        assert!(opened > 0);
        assert_eq!(opened, closed, "{output}");
        assert!(output.contains("##[group]iteration 1 · test\n"), "{output}");
        assert!(
            output.contains("##[group]iteration 1 · repair · propose\n"),
            "{output}"
        );
        assert!(
            output.contains("##vso[task.setprogress value=20]iteration 2 of 5\n"),
            "{output}"
        );
    }

    #[test]
    fn earlier_failures_are_warnings_optional_ones_too() {
        let output = replay(&two_iteration_run(), positions());
        assert!(
            output.contains(
                "##vso[task.logissue type=warning;sourcepath=workflows/app.yaml;linenumber=13;\
                 columnnumber=1]test failed in iteration 1: exit code 2 (retried in a later iteration)"
            ),
            "{output}"
        );
        assert!(
            output.contains("type=warning;sourcepath=workflows/app.yaml;linenumber=12;"),
            "{output}"
        );
        assert!(!output.contains("type=error"), "{output}");
        assert!(
            output.ends_with("##vso[task.complete result=Succeeded]all required steps passed\n"),
            "{output}"
        );
    }

    #[test]
    fn absolute_paths_under_the_sources_become_relative() {
        let positions = StepPositions(HashMap::from([
            (
                "a".to_owned(),
                (PathBuf::from("/agent/_work/1/s/workflows/app.yaml"), 3),
            ),
            ("b".to_owned(), (PathBuf::from("/elsewhere/t.yaml"), 4)),
        ]))
        .relative_to(Some(Path::new("/agent/_work/1/s")));
        assert_eq!(
            positions.get("a"),
            Some((Path::new("workflows/app.yaml"), 3))
        );
        assert_eq!(
            positions.get("b"),
            Some((Path::new("/elsewhere/t.yaml"), 4))
        );
    }

    #[test]
    fn a_run_that_never_finished_completes_as_failed() {
        let output = replay(&crashed_run(), StepPositions::default());
        assert!(
            output.contains("##[endgroup]\n##vso[artifact.upload "),
            "{output}"
        );
        assert!(
            output.ends_with(
                "##vso[task.complete result=Failed]the run stopped before it finished\n"
            ),
            "{output}"
        );
    }
}
