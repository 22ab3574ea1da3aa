//! Scripted event streams the reporters' unit tests replay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::engine::decision::{Decision, Tokens};
use crate::engine::events::{Event, RunOutcome};
use crate::steps::{StepOutcome, StepStatus};
use crate::workflow::model::Phase;

pub(crate) const ARTIFACTS_DIR: &str = ".agent-orch/runs/run-1";

fn run_started() -> Event {
    Event::RunStarted {
        run_id: "run-1".to_owned(),
        workflow: "fleet-deploy".to_owned(),
        workflow_path: PathBuf::from("workflows/fleet-deploy.yaml"),
        environment: Some("staging".to_owned()),
        artifacts_dir: PathBuf::from(ARTIFACTS_DIR),
        max_iterations: 5,
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
    }
}

fn started(iteration: u32, phase: Phase, id: &str, index: usize, total: usize) -> Event {
    Event::StepStarted {
        iteration,
        phase,
        step_id: id.to_owned(),
        step_name: id.to_owned(),
        kind: kind_of(id),
        index,
        total,
    }
}

fn kind_of(id: &str) -> &'static str {
    match id {
        "deploy" => "deploy",
        "smoke" => "verify",
        "propose" => "fix",
        "approve" => "review",
        _ => "gate",
    }
}

struct Finished<'a> {
    iteration: u32,
    phase: Phase,
    id: &'a str,
    required: bool,
    millis: u64,
    outcome: StepOutcome,
}

fn finished(step: Finished<'_>) -> Event {
    Event::StepFinished {
        iteration: step.iteration,
        phase: step.phase,
        step_id: step.id.to_owned(),
        step_name: step.id.to_owned(),
        kind: kind_of(step.id),
        required: step.required,
        duration: Duration::from_millis(step.millis),
        outcome: Arc::new(step.outcome),
    }
}

/// A step that ran and passed, with its log under `steps/`.
fn passed(iteration: u32, phase: Phase, id: &str, millis: u64) -> Event {
    let mut outcome = StepOutcome::passed("");
    outcome.log_path = Some(log_path(iteration, id));
    finished(Finished {
        iteration,
        phase,
        id,
        required: true,
        millis,
        outcome,
    })
}

fn log_path(iteration: u32, id: &str) -> PathBuf {
    PathBuf::from(ARTIFACTS_DIR).join(format!("steps/{iteration}-{id}.log"))
}

fn exit_failure(id: &str, code: i32, output: &str) -> StepOutcome {
    let mut outcome = StepOutcome::failed(format!("exit code {code}"));
    outcome.exit_code = Some(code);
    outcome.output_tail = output.to_owned();
    outcome.log_path = Some(log_path(1, id));
    outcome
}

/// Iteration 1: optional `lint` fails, required `test` fails, `deploy` and `smoke` are
/// skipped, the repair proposes and approves a patch. Iteration 2: everything passes.
pub(crate) fn two_iteration_run() -> Vec<Event> {
    let skipped = || StepOutcome::new(StepStatus::Skipped, "an earlier required step failed");
    vec![
        run_started(),
        Event::IterationStarted { iteration: 1 },
        started(1, Phase::Steps, "lint", 1, 4),
        finished(Finished {
            iteration: 1,
            phase: Phase::Steps,
            id: "lint",
            required: false,
            millis: 300,
            outcome: exit_failure("lint", 1, "src/app.ts:3:7 error 'x' is unused"),
        }),
        started(1, Phase::Steps, "test", 2, 4),
        finished(Finished {
            iteration: 1,
            phase: Phase::Steps,
            id: "test",
            required: true,
            millis: 1200,
            outcome: exit_failure(
                "test",
                2,
                "PASS src/util.test.ts\nFAIL src/app.test.ts\n  expected 200, received 500\n",
            ),
        }),
        finished(Finished {
            iteration: 1,
            phase: Phase::Steps,
            id: "deploy",
            required: true,
            millis: 0,
            outcome: skipped(),
        }),
        finished(Finished {
            iteration: 1,
            phase: Phase::Steps,
            id: "smoke",
            required: true,
            millis: 0,
            outcome: skipped(),
        }),
        started(1, Phase::Repair, "propose", 1, 2),
        passed(1, Phase::Repair, "propose", 4000),
        Event::Decision {
            iteration: 1,
            decision: Decision::Scripted {
                kind: "patch_proposed",
                summary: "return 200 from the health handler".to_owned(),
                tokens: Tokens {
                    prompt: 1200,
                    completion: 300,
                    estimated: false,
                },
            },
        },
        started(1, Phase::Repair, "approve", 2, 2),
        passed(1, Phase::Repair, "approve", 2000),
        Event::Decision {
            iteration: 1,
            decision: Decision::Scripted {
                kind: "review_verdict",
                summary: "approved".to_owned(),
                tokens: Tokens {
                    prompt: 800,
                    completion: 50,
                    estimated: false,
                },
            },
        },
        Event::IterationFinished {
            iteration: 1,
            passed: false,
            fingerprint: Some("3f2a9c".to_owned()),
            failure: Some("steps/test: exit code 2".to_owned()),
        },
        Event::IterationStarted { iteration: 2 },
        started(2, Phase::Steps, "lint", 1, 4),
        passed(2, Phase::Steps, "lint", 260),
        started(2, Phase::Steps, "test", 2, 4),
        passed(2, Phase::Steps, "test", 1100),
        started(2, Phase::Steps, "deploy", 3, 4),
        passed(2, Phase::Steps, "deploy", 4500),
        started(2, Phase::Steps, "smoke", 4, 4),
        passed(2, Phase::Steps, "smoke", 800),
        Event::IterationFinished {
            iteration: 2,
            passed: true,
            fingerprint: None,
            failure: None,
        },
        Event::RunFinished {
            outcome: RunOutcome::Succeeded,
            reason: "all required steps passed".to_owned(),
            iterations: 2,
            duration: Duration::from_millis(14_660),
        },
    ]
}

/// Iteration 1 ends inconclusive; Ctrl-C arrives while iteration 2's `build` runs.
pub(crate) fn interrupted_run() -> Vec<Event> {
    let mut events = crashed_run();
    let mut cancelled = StepOutcome::new(StepStatus::Cancelled, "cancelled by ctrl-c");
    cancelled.output_tail = "compiling 12/40".to_owned();
    events.push(finished(Finished {
        iteration: 2,
        phase: Phase::Steps,
        id: "build",
        required: true,
        millis: 700,
        outcome: cancelled,
    }));
    events.push(Event::RunFinished {
        outcome: RunOutcome::Interrupted,
        reason: "interrupted by ctrl-c".to_owned(),
        iterations: 2,
        duration: Duration::from_millis(3_900),
    });
    events
}

/// The interrupted run cut short: `build` never finishes and `RunFinished` never comes, as
/// when the process is killed; only `finish` is called.
pub(crate) fn crashed_run() -> Vec<Event> {
    let mut inconclusive = StepOutcome::new(
        StepStatus::Inconclusive,
        "neither the success nor the failure condition held",
    );
    inconclusive.output_tail = "GET /health -> 502 (3 attempts)".to_owned();
    vec![
        run_started(),
        Event::IterationStarted { iteration: 1 },
        started(1, Phase::Steps, "build", 1, 2),
        passed(1, Phase::Steps, "build", 2000),
        started(1, Phase::Steps, "smoke", 2, 2),
        finished(Finished {
            iteration: 1,
            phase: Phase::Steps,
            id: "smoke",
            required: true,
            millis: 1200,
            outcome: inconclusive,
        }),
        Event::IterationFinished {
            iteration: 1,
            passed: false,
            fingerprint: Some("77e0b1".to_owned()),
            failure: Some(
                "steps/smoke: neither the success nor the failure condition held".to_owned(),
            ),
        },
        Event::IterationStarted { iteration: 2 },
        started(2, Phase::Steps, "build", 1, 2),
    ]
}
