//! The event stream the engine emits; every reporter (console, logs, JUnit, audit, metrics,
//! summary) is fed from it and from nothing else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use serde::Serialize;

use crate::ado::logging::TaskResult;
use crate::engine::decision::Decision;
use crate::redact::Redactor;
use crate::steps::StepOutcome;
use crate::workflow::model::Phase;

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        workflow: String,
        workflow_path: PathBuf,
        environment: Option<String>,
        artifacts_dir: PathBuf,
        max_iterations: u32,
        #[serde(serialize_with = "rfc3339")]
        at: SystemTime,
    },
    IterationStarted {
        iteration: u32,
    },
    StepStarted {
        iteration: u32,
        phase: Phase,
        step_id: String,
        step_name: String,
        kind: &'static str,
        /// 1-based position among the steps of its phase.
        index: usize,
        total: usize,
    },
    StepFinished {
        iteration: u32,
        phase: Phase,
        step_id: String,
        step_name: String,
        kind: &'static str,
        required: bool,
        #[serde(serialize_with = "seconds")]
        duration: Duration,
        outcome: Arc<StepOutcome>,
    },
    IterationFinished {
        iteration: u32,
        passed: bool,
        /// Normalized signature of the iteration's failure, if it failed.
        fingerprint: Option<String>,
        /// `stage/step: message` of the first required failure.
        failure: Option<String>,
    },
    /// A choice the engine or an agent made: no-progress stop, budget stop, patch verdicts, ...
    ///
    /// Written as `kind` and `detail` beside `iteration`; the reports match on the
    /// [`Decision`] itself.
    Decision {
        iteration: u32,
        #[serde(flatten)]
        decision: Decision,
    },
    /// The workflow's `outputs`, rendered after a successful run (before `RunFinished`).
    OutputsRendered {
        outputs: IndexMap<String, String>,
    },
    RunFinished {
        outcome: RunOutcome,
        /// Why the run stopped, in one lowercase line.
        reason: String,
        iterations: u32,
        #[serde(serialize_with = "seconds")]
        duration: Duration,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    /// Succeeded, but a `required: false` step failed along the way.
    SucceededWithIssues,
    /// Gave up: max iterations, no progress, budget, or a failure that cannot be repaired.
    Failed,
    Interrupted,
}

/// The task result a run's outcome is reported as in Azure Pipelines.
impl From<RunOutcome> for TaskResult {
    fn from(outcome: RunOutcome) -> Self {
        match outcome {
            RunOutcome::Succeeded => TaskResult::Succeeded,
            RunOutcome::SucceededWithIssues => TaskResult::SucceededWithIssues,
            RunOutcome::Failed | RunOutcome::Interrupted => TaskResult::Failed,
        }
    }
}

impl RunOutcome {
    /// The outcome as reports and notifications write it (its serialized name).
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::SucceededWithIssues => "succeeded_with_issues",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
        }
    }
}

impl Event {
    /// The event with every text in it redacted, before any reporter sees it: a secret echoed
    /// by a failing script lands in its output tail, and from there in every report. File
    /// paths are left as they are.
    pub fn redacted(&self, redactor: &Redactor) -> Event {
        let mut event = self.clone();
        match &mut event {
            Event::RunStarted {
                run_id, workflow, ..
            } => {
                redactor.redact_in_place(run_id);
                redactor.redact_in_place(workflow);
            }
            Event::IterationStarted { .. } => {}
            Event::StepStarted { step_name, .. } => redactor.redact_in_place(step_name),
            Event::StepFinished {
                step_name, outcome, ..
            } => {
                redactor.redact_in_place(step_name);
                let mut redacted = StepOutcome::clone(outcome);
                redactor.redact_in_place(&mut redacted.message);
                redactor.redact_in_place(&mut redacted.output_tail);
                for value in redacted.outputs.values_mut() {
                    redactor.redact_in_place(value);
                }
                if let Some(evidence) = &mut redacted.evidence {
                    redactor.redact_in_place(evidence);
                }
                *outcome = Arc::new(redacted);
            }
            Event::IterationFinished {
                failure,
                fingerprint,
                ..
            } => {
                for text in [failure, fingerprint].into_iter().flatten() {
                    redactor.redact_in_place(text);
                }
            }
            Event::Decision { decision, .. } => decision.redact(redactor),
            Event::OutputsRendered { outputs } => {
                for value in outputs.values_mut() {
                    redactor.redact_in_place(value);
                }
            }
            Event::RunFinished { reason, .. } => redactor.redact_in_place(reason),
        }
        event
    }
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

fn rfc3339<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decision::{AgentExchange, Tokens};
    use crate::llm::{Risk, Verdict};

    #[test]
    fn run_outcomes_map_to_task_results() {
        assert_eq!(
            TaskResult::from(RunOutcome::SucceededWithIssues),
            TaskResult::SucceededWithIssues
        );
        assert_eq!(
            TaskResult::from(RunOutcome::Interrupted),
            TaskResult::Failed
        );
        assert_eq!(
            TaskResult::from(RunOutcome::Succeeded),
            TaskResult::Succeeded
        );
    }

    #[test]
    fn an_outcome_reads_as_it_serializes() {
        for outcome in [
            RunOutcome::Succeeded,
            RunOutcome::SucceededWithIssues,
            RunOutcome::Failed,
            RunOutcome::Interrupted,
        ] {
            assert_eq!(
                serde_json::to_value(outcome).unwrap_or_default(),
                outcome.as_str()
            );
        }
    }

    #[test]
    fn every_text_of_an_event_is_redacted() {
        let redactor = Redactor::builder().secret("hunter2-pw").build();
        let mut outcome = StepOutcome::failed("login failed for hunter2-pw");
        outcome.output_tail =
            "curl -u admin:hunter2-pw https://x\nghp_abcdefghijklmnopqrstuvwxyz0123456789\n"
                .to_owned();
        outcome.evidence = Some("Authorization: Basic aHVudGVyMi1wdw==".to_owned());
        outcome
            .outputs
            .insert("token".to_owned(), "hunter2-pw".to_owned());
        let step = Event::StepFinished {
            iteration: 1,
            phase: Phase::Steps,
            step_id: "login".to_owned(),
            step_name: "login".to_owned(),
            kind: "gate",
            required: true,
            duration: Duration::from_secs(1),
            outcome: Arc::new(outcome),
        };
        let redacted = serde_json::to_string(&step.redacted(&redactor)).unwrap_or_default();
        for secret in ["hunter2-pw", "ghp_", "aHVudGVyMi1wdw"] {
            assert!(!redacted.contains(secret), "{secret}: {redacted}");
        }
        assert_eq!(redacted.matches("***").count(), 4, "{redacted}");

        let decision = Event::Decision {
            iteration: 1,
            decision: Decision::ReviewVerdict {
                exchange: AgentExchange {
                    agent: "reviewer".to_owned(),
                    model: "gpt-4o-mini".to_owned(),
                    prompt: "see hunter2-pw".to_owned(),
                    prompt_hash: "9f1c".to_owned(),
                    response: r#"{"approved": false, "reason": "leaks hunter2-pw"}"#.to_owned(),
                    tokens: Tokens::default(),
                    summary: "rejected (high risk): leaks hunter2-pw".to_owned(),
                },
                verdict: Verdict {
                    approved: false,
                    reason: "leaks hunter2-pw".to_owned(),
                    risk: Risk::High,
                    suggestion: Some("read hunter2-pw from the vault".to_owned()),
                },
                structured: true,
                patch_sha256: "abc123".to_owned(),
            },
        };
        let redacted = serde_json::to_string(&decision.redacted(&redactor)).unwrap_or_default();
        assert!(!redacted.contains("hunter2-pw"), "{redacted}");
        assert!(
            redacted.contains(r#""suggestion":"read *** from the vault""#),
            "{redacted}"
        );
    }
}
