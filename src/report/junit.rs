//! `junit.xml`: one testsuite per iteration, one testcase per step, in the shape Azure
//! DevOps' `PublishTestResults@2` reads (`testcase@name`, `time` in seconds,
//! `<failure>`/`<error>` = failed, `<skipped>` = not executed).
//!
//! How step results map:
//!
//! | step result                | JUnit                                                   |
//! |----------------------------|---------------------------------------------------------|
//! | passed                     | plain testcase                                          |
//! | failed                     | `<failure type="failure">`, message + output tail       |
//! | inconclusive               | `<failure type="inconclusive">`                         |
//! | failed, `required: false`  | `<failure type="not_required">`, property `required=false` and a system-out note: it shows as failed in the pipeline's test tab (a real problem worth seeing) but did not fail the run |
//! | skipped                    | `<skipped>`                                             |
//! | cancelled / never finished | `<skipped type="cancelled">` / `<skipped type="interrupted">`: an interruption is not a test failure |
//!
//! The file is rewritten after every iteration and at the end, so an interrupted run still
//! leaves valid XML for everything up to the interruption.

use std::io;
use std::path::PathBuf;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::Reporter;
use super::atomic_file::write_atomically;
use super::format::output_excerpt;
use super::run_record::{IterationRecord, RunRecord, StepRecord, UnfinishedStep};
use crate::engine::events::Event;
use crate::steps::StepStatus;

/// The output lines kept in a `<failure>`: the end of the output, where the error usually is.
const EXCERPT_LINES: usize = 60;
const EXCERPT_BYTES: usize = 8 * 1024;

pub struct JunitReport {
    path: PathBuf,
    record: RunRecord,
}

impl JunitReport {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            record: RunRecord::default(),
        }
    }

    fn write(&self) -> io::Result<()> {
        let xml = junit_report(&self.record)
            .to_string()
            .map_err(io::Error::other)?;
        write_atomically(&self.path, xml.as_bytes())
    }
}

impl Reporter for JunitReport {
    fn name(&self) -> &str {
        "junit.xml"
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

fn junit_report(record: &RunRecord) -> Report {
    let mut report = Report::new(record.workflow());
    report.set_time(record.duration());
    for iteration in &record.iterations {
        report.add_test_suite(iteration_suite(record.workflow(), iteration));
    }
    report
}

fn iteration_suite(workflow: &str, iteration: &IterationRecord) -> TestSuite {
    let mut suite = TestSuite::new(format!("iteration {}", iteration.number));
    suite.set_time(iteration.steps.iter().map(|step| step.duration).sum());
    suite.add_property(Property::new("iteration", iteration.number.to_string()));
    if let Some(result) = &iteration.result {
        suite.add_property(Property::new("passed", result.passed.to_string()));
        if let Some(fingerprint) = &result.fingerprint {
            suite.add_property(Property::new("fingerprint", fingerprint));
        }
        if let Some(failure) = &result.failure {
            suite.set_system_out(format!("iteration failed: {failure}"));
        }
    }
    suite.add_test_cases(iteration.steps.iter().map(|step| step_case(workflow, step)));
    suite.add_test_cases(
        iteration
            .unfinished
            .iter()
            .map(|step| unfinished_case(workflow, step)),
    );
    suite
}

fn step_case(workflow: &str, step: &StepRecord) -> TestCase {
    let outcome = &step.outcome;
    let status = match outcome.status {
        StepStatus::Passed => TestCaseStatus::success(),
        StepStatus::Failed | StepStatus::Inconclusive => {
            let failure_type = match (outcome.status, step.required) {
                (StepStatus::Inconclusive, _) => "inconclusive",
                (_, false) => "not_required",
                (_, true) => "failure",
            };
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(&outcome.message).set_type(failure_type);
            let excerpt = output_excerpt(&outcome.output_tail, EXCERPT_LINES, EXCERPT_BYTES);
            if !excerpt.is_empty() {
                status.set_description(excerpt);
            }
            status
        }
        StepStatus::Skipped => skipped_status(&outcome.message, None),
        StepStatus::Cancelled => skipped_status(&outcome.message, Some("cancelled")),
    };
    let mut case = TestCase::new(&step.step_id, status);
    case.set_classname(format!("{workflow}.{}", step.phase.key()))
        .set_time(step.duration);
    if step.step_name != step.step_id {
        case.add_property(Property::new("name", &step.step_name));
    }
    if !step.required {
        case.add_property(Property::new("required", "false"));
    }
    let mut system_out = Vec::new();
    if !step.required && step.is_failure() {
        system_out.push("not required: this failure did not fail the run".to_owned());
    }
    if let Some(log_path) = &outcome.log_path {
        system_out.push(format!("log: {}", log_path.display()));
    }
    if let Some(evidence) = &outcome.evidence {
        system_out.push(evidence.clone());
    }
    if !system_out.is_empty() {
        case.set_system_out(system_out.join("\n"));
    }
    case
}

fn skipped_status(message: &str, skip_type: Option<&str>) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    if !message.is_empty() {
        status.set_message(message);
    }
    if let Some(skip_type) = skip_type {
        status.set_type(skip_type);
    }
    status
}

fn unfinished_case(workflow: &str, step: &UnfinishedStep) -> TestCase {
    let status = skipped_status(
        "the run stopped before this step finished",
        Some("interrupted"),
    );
    let mut case = TestCase::new(&step.step_id, status);
    case.set_classname(format!("{workflow}.{}", step.phase.key()));
    if step.step_name != step.step_id {
        case.add_property(Property::new("name", &step.step_name));
    }
    case
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quick_junit::{Report, TestCaseStatus};

    use super::*;
    use crate::report::test_events::{crashed_run, interrupted_run, two_iteration_run};

    fn replay(events: &[Event]) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut junit = JunitReport::new(&path);
        for event in events {
            junit.on_event(event).unwrap();
        }
        junit.finish().unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        Report::deserialize_from_str(&xml).unwrap()
    }

    fn failure(case: &TestCase) -> (Option<&str>, Option<&str>, Option<&str>) {
        match &case.status {
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                message,
                ty,
                description,
                ..
            } => (message.as_deref(), ty.as_deref(), description.as_deref()),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn skip(case: &TestCase) -> (Option<&str>, Option<&str>) {
        match &case.status {
            TestCaseStatus::Skipped { message, ty, .. } => (message.as_deref(), ty.as_deref()),
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    fn property<'a>(case: &'a TestCase, name: &str) -> Option<&'a str> {
        case.properties
            .iter()
            .find(|property| &*property.name == name)
            .map(|property| &*property.value)
    }

    #[test]
    fn one_suite_per_iteration_one_case_per_step() {
        let report = replay(&two_iteration_run());
        assert_eq!(report.name.as_deref(), Some("fleet-deploy"));
        assert_eq!(report.time, Some(Duration::from_millis(14_660)));
        let summary: Vec<_> = report
            .test_suites
            .iter()
            .map(|suite| {
                (
                    &*suite.name,
                    suite.tests,
                    suite.failures,
                    suite.errors,
                    suite.skipped,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("iteration 1", 6, 2, 0, 2), ("iteration 2", 4, 0, 0, 0)]
        );
        let iteration_1: Vec<_> = report.test_suites[0]
            .test_cases
            .iter()
            .map(|case| (&*case.name, case.classname.as_deref(), case.time))
            .collect();
        assert_eq!(
            iteration_1,
            [
                (
                    "lint",
                    Some("fleet-deploy.steps"),
                    Some(Duration::from_millis(300))
                ),
                (
                    "test",
                    Some("fleet-deploy.steps"),
                    Some(Duration::from_millis(1200))
                ),
                ("deploy", Some("fleet-deploy.steps"), Some(Duration::ZERO)),
                ("smoke", Some("fleet-deploy.steps"), Some(Duration::ZERO)),
                (
                    "propose",
                    Some("fleet-deploy.repair"),
                    Some(Duration::from_secs(4))
                ),
                (
                    "approve",
                    Some("fleet-deploy.repair"),
                    Some(Duration::from_secs(2))
                ),
            ]
        );
        assert_eq!(
            report.test_suites[0].time,
            Some(Duration::from_millis(7500))
        );
        assert_eq!(
            report.test_suites[0].system_out.as_deref(),
            Some("iteration failed: steps/test: exit code 2")
        );
    }

    #[test]
    fn failures_carry_the_message_and_the_output_tail() {
        let report = replay(&two_iteration_run());
        let cases = &report.test_suites[0].test_cases;

        let (message, ty, description) = failure(&cases[1]);
        assert_eq!(message, Some("exit code 2"));
        assert_eq!(ty, Some("failure"));
        let description = description.unwrap();
        assert!(
            description.ends_with("expected 200, received 500"),
            "{description}"
        );
        assert!(
            description.contains("FAIL src/app.test.ts"),
            "{description}"
        );
        assert_eq!(property(&cases[1], "required"), None);
        assert_eq!(
            cases[1].system_out.as_deref(),
            Some("log: .agent-orch/runs/run-1/steps/1-test.log")
        );
    }

    #[test]
    fn an_optional_failure_is_a_failure_marked_not_required() {
        let report = replay(&two_iteration_run());
        let lint = &report.test_suites[0].test_cases[0];
        let (message, ty, _) = failure(lint);
        assert_eq!(message, Some("exit code 1"));
        assert_eq!(ty, Some("not_required"));
        assert_eq!(property(lint, "required"), Some("false"));
        assert!(
            lint.system_out
                .as_deref()
                .unwrap()
                .starts_with("not required: this failure did not fail the run\nlog: ")
        );
    }

    #[test]
    fn skipped_steps_are_not_executed() {
        let report = replay(&two_iteration_run());
        let deploy = &report.test_suites[0].test_cases[2];
        assert_eq!(
            skip(deploy),
            (Some("an earlier required step failed"), None)
        );
    }

    #[test]
    fn inconclusive_is_a_failure_and_cancelled_is_skipped() {
        let report = replay(&interrupted_run());
        let suites = &report.test_suites;
        assert_eq!(suites.len(), 2);
        let (message, ty, description) = failure(&suites[0].test_cases[1]);
        assert_eq!(
            message,
            Some("neither the success nor the failure condition held")
        );
        assert_eq!(ty, Some("inconclusive"));
        assert_eq!(description, Some("GET /health -> 502 (3 attempts)"));
        assert_eq!(
            skip(&suites[1].test_cases[0]),
            (Some("cancelled by ctrl-c"), Some("cancelled"))
        );
    }

    #[test]
    fn a_step_that_never_finished_is_reported_as_interrupted() {
        let report = replay(&crashed_run());
        let build = &report.test_suites[1].test_cases[0];
        assert_eq!(&*build.name, "build");
        assert_eq!(
            skip(build),
            (
                Some("the run stopped before this step finished"),
                Some("interrupted")
            )
        );
    }

    #[test]
    fn written_after_each_iteration_before_the_run_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut junit = JunitReport::new(&path);
        let events = two_iteration_run();
        let first_iteration_end = events
            .iter()
            .position(|event| matches!(event, Event::IterationFinished { .. }))
            .unwrap();
        for event in &events[..=first_iteration_end] {
            junit.on_event(event).unwrap();
        }
        let report =
            Report::deserialize_from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(report.test_suites.len(), 1);
        assert_eq!(report.tests, 6);
    }
}
