//! The terminal view of a run, on stderr: a header, a line when each step starts and when it
//! finishes, iteration headers, one line per decision, and a final verdict with the path to
//! the artifacts.
//!
//! [`Console`] writes styled text into any [`Write`]; whether the styles survive is the
//! writer's business. [`Console::stderr`] wraps stderr in an [`anstream::AutoStream`], which
//! keeps colours only when asked to (`--color always`) or, with `auto`, when stderr is a
//! terminal and `NO_COLOR` is unset. Tests hand in an `AutoStream` over a `Vec<u8>`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anstream::AutoStream;
pub use anstream::ColorChoice;
use anstyle::{AnsiColor, Style};

use super::Reporter;
use super::format::{decision_summary, human_duration, iterations_phrase, one_line};
use crate::engine::events::{Event, RunOutcome};
use crate::steps::{StepOutcome, StepStatus};
use crate::workflow::model::Phase;

const MAX_MESSAGE_CHARS: usize = 200;

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const GREEN: Style = AnsiColor::Green.on_default().bold();
const RED: Style = AnsiColor::Red.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
const CYAN: Style = AnsiColor::Cyan.on_default();
const MAGENTA: Style = AnsiColor::Magenta.on_default();

/// Writes to stderr unless told otherwise, so `None::<Console>` names "no console".
pub struct Console<W: Write = anstream::Stderr> {
    out: W,
    max_iterations: u32,
    artifacts_dir: Option<PathBuf>,
    run_finished: bool,
}

impl Console<anstream::Stderr> {
    /// The console on stderr, coloured according to `choice` (the user's `--color`).
    pub fn stderr(choice: ColorChoice) -> Self {
        Self::new(AutoStream::new(io::stderr(), choice))
    }
}

impl<W: Write> Console<W> {
    /// A console writing styled text to `out` (wrap it in an `AutoStream` to strip styles).
    pub fn new(out: W) -> Self {
        Self {
            out,
            max_iterations: 0,
            artifacts_dir: None,
            run_finished: false,
        }
    }

    /// The underlying stream, for lines the console does not know about (such as Azure
    /// Pipelines' `##[group]` markers).
    pub fn writer(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_writer(self) -> W {
        self.out
    }

    fn step_finished(
        &mut self,
        step_name: &str,
        required: bool,
        duration: Duration,
        outcome: &StepOutcome,
    ) -> io::Result<()> {
        let message = one_line(&outcome.message, MAX_MESSAGE_CHARS);
        let elapsed = human_duration(duration);
        let out = &mut self.out;
        match outcome.status {
            StepStatus::Passed => {
                writeln!(out, "{GREEN}✓{GREEN:#} {step_name}  {DIM}{elapsed}{DIM:#}")
            }
            StepStatus::Failed if !required => writeln!(
                out,
                "{YELLOW}!{YELLOW:#} {step_name}  {message} (not required)  {DIM}{elapsed}{DIM:#}"
            ),
            StepStatus::Failed => writeln!(
                out,
                "{RED}✗{RED:#} {step_name}  {message}  {DIM}{elapsed}{DIM:#}"
            ),
            StepStatus::Inconclusive => writeln!(
                out,
                "{YELLOW}?{YELLOW:#} {step_name}  inconclusive: {message}  {DIM}{elapsed}{DIM:#}"
            ),
            StepStatus::Skipped => writeln!(out, "{DIM}- {step_name}  skipped{DIM:#}"),
            StepStatus::Cancelled => {
                let message = if message.is_empty() {
                    "cancelled".to_owned()
                } else {
                    message
                };
                writeln!(
                    out,
                    "{YELLOW}✗{YELLOW:#} {step_name}  {message}  {DIM}{elapsed}{DIM:#}"
                )
            }
        }
    }

    fn run_finished(
        &mut self,
        outcome: RunOutcome,
        reason: &str,
        iterations: u32,
        duration: Duration,
    ) -> io::Result<()> {
        let after = format!(
            "{} ({})",
            iterations_phrase(iterations),
            human_duration(duration)
        );
        let reason = one_line(reason, MAX_MESSAGE_CHARS);
        let out = &mut self.out;
        writeln!(out)?;
        match outcome {
            RunOutcome::Succeeded => writeln!(out, "{GREEN}✓ succeeded in {after}{GREEN:#}"),
            RunOutcome::SucceededWithIssues => writeln!(
                out,
                "{YELLOW}! succeeded with issues in {after}{YELLOW:#}: {reason}"
            ),
            RunOutcome::Failed => writeln!(out, "{RED}✗ gave up after {after}{RED:#}: {reason}"),
            RunOutcome::Interrupted => {
                writeln!(
                    out,
                    "{YELLOW}✗ interrupted after {after}{YELLOW:#}: {reason}"
                )
            }
        }?;
        self.artifacts_line()
    }

    fn artifacts_line(&mut self) -> io::Result<()> {
        match &self.artifacts_dir {
            Some(dir) => writeln!(self.out, "{DIM}artifacts:{DIM:#} {}", dir.display()),
            None => Ok(()),
        }
    }
}

impl<W: Write> Reporter for Console<W> {
    fn name(&self) -> &str {
        "console"
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
                self.max_iterations = *max_iterations;
                self.artifacts_dir = Some(artifacts_dir.clone());
                let out = &mut self.out;
                write!(out, "{BOLD}{workflow}{BOLD:#}")?;
                if let Some(environment) = environment {
                    write!(out, " · env {environment}")?;
                }
                writeln!(out, " · run {run_id}")?;
                writeln!(out, "{DIM}artifacts:{DIM:#} {}", artifacts_dir.display())?;
            }
            Event::IterationStarted { iteration } => {
                writeln!(
                    self.out,
                    "\n{BOLD}iteration {iteration}/{}{BOLD:#}",
                    self.max_iterations
                )?;
            }
            Event::StepStarted {
                phase,
                step_name,
                index,
                total,
                ..
            } => {
                let position = match phase {
                    Phase::Steps => format!("{index}/{total}"),
                    Phase::Repair => format!("repair {index}/{total}"),
                    Phase::OnGiveUp => format!("on give up {index}/{total}"),
                    Phase::OnSuccess => format!("on success {index}/{total}"),
                };
                writeln!(
                    self.out,
                    "{CYAN}▶{CYAN:#} {step_name}  {DIM}({position}){DIM:#}"
                )?;
            }
            Event::StepFinished {
                step_name,
                required,
                duration,
                outcome,
                ..
            } => self.step_finished(step_name, *required, *duration, outcome)?,
            Event::IterationFinished {
                iteration,
                passed: false,
                failure,
                ..
            } => {
                let failure = failure.as_deref().unwrap_or("a required step failed");
                writeln!(
                    self.out,
                    "{DIM}  iteration {iteration} failed: {}{DIM:#}",
                    one_line(failure, MAX_MESSAGE_CHARS)
                )?;
            }
            Event::IterationFinished { passed: true, .. } => {}
            Event::Decision { decision, .. } => {
                let kind = decision.kind();
                let summary = decision_summary(decision);
                if summary.is_empty() {
                    writeln!(self.out, "{MAGENTA}◆ {kind}{MAGENTA:#}")?;
                } else {
                    writeln!(self.out, "{MAGENTA}◆ {kind}{MAGENTA:#}: {summary}")?;
                }
            }
            Event::OutputsRendered { outputs } => {
                for (name, value) in outputs {
                    writeln!(self.out, "{DIM}output{DIM:#} {name} = {value}")?;
                }
            }
            Event::RunFinished {
                outcome,
                reason,
                iterations,
                duration,
            } => {
                self.run_finished = true;
                self.run_finished(*outcome, reason, *iterations, *duration)?;
            }
        }
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.run_finished {
            writeln!(
                self.out,
                "\n{YELLOW}✗ the run stopped before it finished{YELLOW:#}"
            )?;
            self.artifacts_line()?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_events::{crashed_run, interrupted_run, two_iteration_run};

    fn replay(events: &[Event], choice: ColorChoice) -> String {
        let mut console = Console::new(AutoStream::new(Vec::new(), choice));
        for event in events {
            console.on_event(event).unwrap();
        }
        console.finish().unwrap();
        String::from_utf8(console.into_writer().into_inner()).unwrap()
    }

    #[test]
    fn two_iterations_without_colour() {
        let output = replay(&two_iteration_run(), ColorChoice::Never);
        assert!(!output.contains('\x1b'), "{output}");
        assert!(output.contains("\n✗ test  exit code 2  1.2s\n"), "{output}");
        assert!(output.ends_with(
            "\n✓ succeeded in 2 iterations (14.7s)\nartifacts: .agent-orch/runs/run-1\n"
        ));
        insta::assert_snapshot!("console_two_iterations", output);
    }

    #[test]
    fn interrupted_without_colour() {
        let output = replay(&interrupted_run(), ColorChoice::Never);
        insta::assert_snapshot!("console_interrupted", output);
    }

    #[test]
    fn a_run_that_never_finished_still_gets_a_last_line() {
        let output = replay(&crashed_run(), ColorChoice::Never);
        assert!(
            output.ends_with(
                "▶ build  (1/2)\n\n✗ the run stopped before it finished\n\
             artifacts: .agent-orch/runs/run-1\n"
            ),
            "{output}"
        );
    }

    #[test]
    fn colour_when_asked_for() {
        let output = replay(&two_iteration_run(), ColorChoice::AlwaysAnsi);
        let green_tick = format!("{GREEN}✓{GREEN:#}");
        assert!(output.contains(&green_tick), "{output}");
        assert!(output.contains(&format!("{RED}✗{RED:#} test")), "{output}");
    }
}
