//! The choices the engine and its agents make, one variant per kind, with typed fields: the
//! reports match on them instead of digging in JSON.
//!
//! In `audit.jsonl` (and every other serialized form) a decision is still written as
//! `"kind": "<kind>", "detail": {...}` with the keys sorted, as when the detail was free-form
//! JSON: [`Decision::detail`] builds that object from the fields.

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use serde_json::{Value, json};

use crate::llm::{Usage, Verdict};
use crate::patch::{AppliedFile, EditFormat, FileChange, PolicyDecision, Violation};
use crate::redact::Redactor;

/// One decision; `kind()` names it in the reports.
#[derive(Clone, Debug)]
pub enum Decision {
    /// The run stops without succeeding (`stop.<cause>`).
    Stop {
        cause: StopCause,
        reason: String,
        /// The failure's fingerprint, when the loop itself stopped after a failed iteration.
        fingerprint: Option<String>,
    },
    /// An iteration failed and the run goes on, through its repair steps if it has any
    /// (`retry`).
    Retry {
        failure: String,
        fingerprint: String,
        repair_steps: usize,
    },
    /// A failed step runs again under its `retries` (`step.retry`).
    StepRetry {
        step: String,
        /// 1-based number of the attempt about to run.
        attempt: u32,
        of: u32,
        /// Why the attempt before it failed.
        previous: String,
    },
    /// A metric check's baseline, measured before the first iteration (`verify.baseline`).
    VerifyBaseline {
        step: String,
        value: Result<f64, String>,
    },
    /// The run passed and its `on_success` steps run (`on_success`).
    OnSuccess {
        reason: String,
        /// Patches delivered with it.
        patches: usize,
        steps: Vec<String>,
    },
    /// The run gave up and its `on_give_up` steps run (`on_give_up`).
    OnGiveUp { reason: String, steps: Vec<String> },
    /// The fixer's answer (`fix.proposal`).
    FixProposal {
        exchange: AgentExchange,
        /// The edit format the fixer was asked for.
        edit_format: EditFormat,
    },
    /// The reviewer's answer about a proposed patch (`review.verdict`).
    ReviewVerdict {
        exchange: AgentExchange,
        verdict: Verdict,
        /// Whether the verdict was asked for with the JSON-schema response format.
        structured: bool,
        patch_sha256: String,
    },
    /// The patch policy's answer for a parsed patch (`policy.decision`).
    PolicyChecked {
        decision: PolicyDecision,
        /// The format the reply was written in.
        edit_format: EditFormat,
        summary: String,
    },
    /// An allowed patch is on disk (`patch.applied`).
    PatchApplied {
        patch_sha256: String,
        files: Vec<PatchedFile>,
        /// Where its diff is, relative to the artifacts folder.
        diff: String,
        /// Why the diff could not be written, if it could not.
        diff_written: Option<String>,
        summary: String,
    },
    /// A proposal that cannot be used; its reason goes to the next fix attempt
    /// (`patch.unusable`).
    PatchUnusable {
        stage: PatchStage,
        /// Unknown when the reply could not be parsed.
        patch_sha256: Option<String>,
        reason: String,
    },
    /// The last applied patch helped: the failure changed (`patch.kept`).
    PatchKept {
        patch_sha256: String,
        summary: String,
    },
    /// The last applied patch did not help and is reverted (`patch.reverted`).
    PatchReverted {
        patch_sha256: String,
        files: Vec<PatchedFile>,
        reason: String,
        summary: String,
    },
    /// The last applied patch did not help and could not be reverted (`patch.revert_failed`).
    PatchRevertFailed {
        patch_sha256: String,
        error: String,
        summary: String,
    },
    /// A decision of a kind of its own, for the reports' tests to replay.
    #[cfg(test)]
    Scripted {
        kind: &'static str,
        summary: String,
        tokens: Tokens,
    },
}

/// Why a run stops without succeeding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// The same failure again and again.
    NoProgress,
    MaxIterations,
    /// The wall-time or the token budget is used up.
    Budget,
    /// A patch needs `--approve`.
    ApprovalRequired,
    /// An agent cannot be built.
    Agent,
}

/// Where a proposal turned out to be unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchStage {
    /// The reply holds no patch that can be read.
    Parse,
    /// The patch does not fit the files (the dry run or the real one).
    Apply,
}

/// One question to an agent and its answer, as audited: the same fields for every agent.
#[derive(Clone, Debug)]
pub struct AgentExchange {
    pub agent: String,
    pub model: String,
    /// The user message as sent (redacted).
    pub prompt: String,
    pub prompt_hash: String,
    /// The reply, redacted.
    pub response: String,
    pub tokens: Tokens,
    /// What the step made of the answer, in one line.
    pub summary: String,
}

/// The tokens one LLM call used: summed into `metrics.json` and the trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    /// The provider reported no usage and the counts are estimates.
    pub estimated: bool,
}

/// A file an applied (or reverted) patch changed, with its hashes before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatchedFile {
    pub path: String,
    pub change: FileChange,
    pub before_sha256: Option<String>,
    pub after_sha256: Option<String>,
}

impl Decision {
    /// The kind the reports show and `audit.jsonl` writes.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Stop { cause, .. } => cause.kind(),
            Decision::Retry { .. } => "retry",
            Decision::StepRetry { .. } => "step.retry",
            Decision::VerifyBaseline { .. } => "verify.baseline",
            Decision::OnSuccess { .. } => "on_success",
            Decision::OnGiveUp { .. } => "on_give_up",
            Decision::FixProposal { .. } => "fix.proposal",
            Decision::ReviewVerdict { .. } => "review.verdict",
            Decision::PolicyChecked { .. } => "policy.decision",
            Decision::PatchApplied { .. } => "patch.applied",
            Decision::PatchUnusable { .. } => "patch.unusable",
            Decision::PatchKept { .. } => "patch.kept",
            Decision::PatchReverted { .. } => "patch.reverted",
            Decision::PatchRevertFailed { .. } => "patch.revert_failed",
            #[cfg(test)]
            Decision::Scripted { kind, .. } => kind,
        }
    }

    /// The decision's fields as the JSON object `audit.jsonl` writes under `detail` (keys
    /// sorted, since `serde_json` maps are).
    pub fn detail(&self) -> Value {
        match self {
            Decision::Stop {
                reason,
                fingerprint: Some(fingerprint),
                ..
            } => json!({ "reason": reason, "fingerprint": fingerprint }),
            Decision::Stop {
                reason,
                fingerprint: None,
                ..
            } => json!({ "reason": reason }),
            Decision::Retry {
                failure,
                fingerprint,
                repair_steps,
            } => json!({
                "failure": failure,
                "fingerprint": fingerprint,
                "repair_steps": repair_steps,
            }),
            Decision::StepRetry {
                step,
                attempt,
                of,
                previous,
            } => json!({ "step": step, "attempt": attempt, "of": of, "previous": previous }),
            Decision::VerifyBaseline {
                step,
                value: Ok(value),
            } => json!({ "step": step, "value": value }),
            Decision::VerifyBaseline {
                step,
                value: Err(error),
            } => json!({ "step": step, "error": error }),
            Decision::OnSuccess {
                reason,
                patches,
                steps,
            } => json!({ "reason": reason, "patches": patches, "steps": steps }),
            Decision::OnGiveUp { reason, steps } => json!({ "reason": reason, "steps": steps }),
            Decision::FixProposal {
                exchange,
                edit_format,
            } => exchange.detail_with(json!({ "edit_format": edit_format })),
            Decision::ReviewVerdict {
                exchange,
                verdict,
                structured,
                patch_sha256,
            } => exchange.detail_with(json!({
                "verdict": verdict,
                "structured": structured,
                "patch_sha256": patch_sha256,
            })),
            Decision::PolicyChecked {
                decision,
                edit_format,
                summary,
            } => json!({ "decision": decision, "edit_format": edit_format, "summary": summary }),
            Decision::PatchApplied {
                patch_sha256,
                files,
                diff,
                diff_written,
                summary,
            } => json!({
                "patch_sha256": patch_sha256,
                "files": files,
                "diff": diff,
                "diff_written": diff_written,
                "summary": summary,
            }),
            Decision::PatchUnusable {
                stage,
                patch_sha256,
                reason,
            } => json!({ "stage": stage.key(), "patch_sha256": patch_sha256, "reason": reason }),
            Decision::PatchKept {
                patch_sha256,
                summary,
            } => json!({ "patch_sha256": patch_sha256, "summary": summary }),
            Decision::PatchReverted {
                patch_sha256,
                files,
                reason,
                summary,
            } => json!({
                "patch_sha256": patch_sha256,
                "files": files,
                "reason": reason,
                "summary": summary,
            }),
            Decision::PatchRevertFailed {
                patch_sha256,
                error,
                summary,
            } => json!({ "patch_sha256": patch_sha256, "error": error, "summary": summary }),
            #[cfg(test)]
            Decision::Scripted {
                summary, tokens, ..
            } => json!({ "summary": summary, "tokens": tokens.detail() }),
        }
    }

    /// What the decision says in words (the console and `run.log` cut it to one line): its
    /// summary or reason, or, for the kinds without one, its fields as `key=value`.
    pub fn summary(&self) -> String {
        match self {
            Decision::Stop { reason, .. }
            | Decision::OnSuccess { reason, .. }
            | Decision::OnGiveUp { reason, .. }
            | Decision::PatchUnusable { reason, .. } => reason.clone(),
            Decision::Retry { failure, .. } => failure.clone(),
            Decision::StepRetry { .. } | Decision::VerifyBaseline { .. } => {
                fields_line(&self.detail())
            }
            Decision::FixProposal { exchange, .. } | Decision::ReviewVerdict { exchange, .. } => {
                exchange.summary.clone()
            }
            Decision::PolicyChecked { summary, .. }
            | Decision::PatchApplied { summary, .. }
            | Decision::PatchKept { summary, .. }
            | Decision::PatchReverted { summary, .. }
            | Decision::PatchRevertFailed { summary, .. } => summary.clone(),
            #[cfg(test)]
            Decision::Scripted { summary, .. } => summary.clone(),
        }
    }

    /// The tokens of the LLM call the decision audits, if it audits one.
    pub fn tokens(&self) -> Option<Tokens> {
        match self {
            Decision::FixProposal { exchange, .. } | Decision::ReviewVerdict { exchange, .. } => {
                Some(exchange.tokens)
            }
            #[cfg(test)]
            Decision::Scripted { tokens, .. } => Some(*tokens),
            _ => None,
        }
    }

    /// The hash of the patch the decision is about, where it names one.
    pub fn patch_sha256(&self) -> Option<&str> {
        match self {
            Decision::ReviewVerdict { patch_sha256, .. }
            | Decision::PatchApplied { patch_sha256, .. }
            | Decision::PatchKept { patch_sha256, .. }
            | Decision::PatchReverted { patch_sha256, .. }
            | Decision::PatchRevertFailed { patch_sha256, .. } => Some(patch_sha256),
            Decision::PatchUnusable { patch_sha256, .. } => patch_sha256.as_deref(),
            _ => None,
        }
    }

    /// Redacts every text the decision holds, before any reporter sees it.
    pub fn redact(&mut self, redactor: &Redactor) {
        for text in self.texts_mut() {
            redactor.redact_in_place(text);
        }
    }

    /// Every text field, nested ones included: what [`Decision::redact`] goes through. Fields
    /// are named rather than skipped with `..`, so that a new one does not compile until it is
    /// listed here.
    fn texts_mut(&mut self) -> Vec<&mut String> {
        match self {
            Decision::Stop {
                cause: _,
                reason,
                fingerprint,
            } => [Some(reason), fingerprint.as_mut()]
                .into_iter()
                .flatten()
                .collect(),
            Decision::Retry {
                failure,
                fingerprint,
                repair_steps: _,
            } => vec![failure, fingerprint],
            Decision::StepRetry {
                step,
                attempt: _,
                of: _,
                previous,
            } => vec![step, previous],
            Decision::VerifyBaseline { step, value } => [Some(step), value.as_mut().err()]
                .into_iter()
                .flatten()
                .collect(),
            Decision::OnSuccess {
                reason,
                patches: _,
                steps,
            }
            | Decision::OnGiveUp { reason, steps } => {
                std::iter::once(reason).chain(steps.iter_mut()).collect()
            }
            Decision::FixProposal {
                exchange,
                edit_format: _,
            } => exchange.texts_mut(),
            Decision::ReviewVerdict {
                exchange,
                verdict,
                structured: _,
                patch_sha256,
            } => {
                let Verdict {
                    approved: _,
                    reason,
                    risk: _,
                    suggestion,
                } = verdict;
                let mut texts = exchange.texts_mut();
                texts.extend(
                    [Some(reason), suggestion.as_mut(), Some(patch_sha256)]
                        .into_iter()
                        .flatten(),
                );
                texts
            }
            Decision::PolicyChecked {
                decision,
                edit_format: _,
                summary,
            } => {
                let mut texts = policy_texts_mut(decision);
                texts.push(summary);
                texts
            }
            Decision::PatchApplied {
                patch_sha256,
                files,
                diff,
                diff_written,
                summary,
            } => [
                Some(patch_sha256),
                Some(diff),
                diff_written.as_mut(),
                Some(summary),
            ]
            .into_iter()
            .flatten()
            .chain(files.iter_mut().flat_map(PatchedFile::texts_mut))
            .collect(),
            Decision::PatchUnusable {
                stage: _,
                patch_sha256,
                reason,
            } => [patch_sha256.as_mut(), Some(reason)]
                .into_iter()
                .flatten()
                .collect(),
            Decision::PatchKept {
                patch_sha256,
                summary,
            } => vec![patch_sha256, summary],
            Decision::PatchReverted {
                patch_sha256,
                files,
                reason,
                summary,
            } => [patch_sha256, reason, summary]
                .into_iter()
                .chain(files.iter_mut().flat_map(PatchedFile::texts_mut))
                .collect(),
            Decision::PatchRevertFailed {
                patch_sha256,
                error,
                summary,
            } => vec![patch_sha256, error, summary],
            #[cfg(test)]
            Decision::Scripted {
                kind: _,
                summary,
                tokens: _,
            } => vec![summary],
        }
    }
}

/// Written as `kind` and `detail`, which an `Event::Decision` flattens beside its iteration.
impl Serialize for Decision {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = serializer.serialize_struct("Decision", 2)?;
        fields.serialize_field("kind", self.kind())?;
        fields.serialize_field("detail", &self.detail())?;
        fields.end()
    }
}

impl StopCause {
    fn kind(self) -> &'static str {
        match self {
            StopCause::NoProgress => "stop.no_progress",
            StopCause::MaxIterations => "stop.max_iterations",
            StopCause::Budget => "stop.budget",
            StopCause::ApprovalRequired => "stop.approval_required",
            StopCause::Agent => "stop.agent",
        }
    }
}

impl PatchStage {
    fn key(self) -> &'static str {
        match self {
            PatchStage::Parse => "parse",
            PatchStage::Apply => "apply",
        }
    }
}

impl AgentExchange {
    /// The common fields, and those of the step that asked (`fields`, an object).
    fn detail_with(&self, fields: Value) -> Value {
        let mut detail = json!({
            "agent": self.agent,
            "model": self.model,
            "prompt": self.prompt,
            "prompt_hash": self.prompt_hash,
            "response": self.response,
            "tokens": self.tokens.detail(),
            "summary": self.summary,
        });
        if let (Value::Object(detail), Value::Object(fields)) = (&mut detail, fields) {
            detail.extend(fields);
        }
        detail
    }

    fn texts_mut(&mut self) -> Vec<&mut String> {
        let AgentExchange {
            agent,
            model,
            prompt,
            prompt_hash,
            response,
            tokens: _,
            summary,
        } = self;
        vec![agent, model, prompt, prompt_hash, response, summary]
    }
}

impl Tokens {
    fn detail(self) -> Value {
        json!({
            "prompt": self.prompt,
            "completion": self.completion,
            "estimated": self.estimated,
        })
    }
}

impl From<Usage> for Tokens {
    fn from(usage: Usage) -> Self {
        Tokens {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
            estimated: usage.estimated,
        }
    }
}

impl From<&AppliedFile> for PatchedFile {
    fn from(file: &AppliedFile) -> Self {
        PatchedFile {
            path: file.path.clone(),
            change: file.change,
            before_sha256: file.before_sha256.clone(),
            after_sha256: file.after_sha256.clone(),
        }
    }
}

impl PatchedFile {
    fn texts_mut(&mut self) -> impl Iterator<Item = &mut String> {
        let PatchedFile {
            path,
            change: _,
            before_sha256,
            after_sha256,
        } = self;
        [Some(path), before_sha256.as_mut(), after_sha256.as_mut()]
            .into_iter()
            .flatten()
    }
}

/// The policy decision's texts; written out field by field so that a field added to it does
/// not compile until it is listed here.
fn policy_texts_mut(decision: &mut PolicyDecision) -> Vec<&mut String> {
    let PolicyDecision {
        verdict: _,
        human_approved: _,
        patch_sha256,
        files,
        lines_added: _,
        lines_removed: _,
        rules: _,
        violations,
    } = decision;
    std::iter::once(patch_sha256)
        .chain(files.iter_mut())
        .chain(violations.iter_mut().flat_map(|violation| {
            let Violation {
                rule: _,
                file,
                line: _,
                pattern,
                message,
            } = violation;
            [Some(file), pattern.as_mut(), Some(message)]
                .into_iter()
                .flatten()
        }))
        .collect()
}

/// `key=value` for each field of `detail`, strings without spaces unquoted: the words of a
/// decision that has no summary.
fn fields_line(detail: &Value) -> String {
    let Value::Object(fields) = detail else {
        return detail.to_string();
    };
    let pairs: Vec<String> = fields
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) if !text.contains(char::is_whitespace) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect();
    pairs.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::Event;
    use crate::llm::Risk;
    use crate::patch::{Rule, RuleCheck};

    /// Lines of `audit.jsonl` (without `seq`, `ts` and `prev_sha256`) and of `run.log` that
    /// the integration tests' runs wrote when `detail` was free-form JSON, and the typed
    /// decisions that stand for them.
    fn written_before() -> Vec<(Decision, u32, &'static str, &'static str)> {
        let greet_sh = || PatchedFile {
            path: "src/greet.sh".to_owned(),
            change: FileChange::Modified,
            before_sha256: Some(
                "60160af6456c896e3d41170abe546348123281d898405e30bdadb9b101d76052".to_owned(),
            ),
            after_sha256: Some(
                "021fa58d172bc2cda69676bbf2cf98c07e6924cf155d67a948725d8068cb4aad".to_owned(),
            ),
        };
        let patch = "bbc4d8f099a4fbb9459141a68b6d20d72722278ff2de28f9767d7f3a392daecb";
        vec![
            (
                Decision::Stop {
                    cause: StopCause::NoProgress,
                    reason: "no progress: the same failure 2 times in a row or more (test: exit code 1)".to_owned(),
                    fingerprint: Some("25c28aa1c1237967".to_owned()),
                },
                2,
                r#"{"event":"decision","iteration":2,"kind":"stop.no_progress","detail":{"fingerprint":"25c28aa1c1237967","reason":"no progress: the same failure 2 times in a row or more (test: exit code 1)"}}"#,
                "no progress: the same failure 2 times in a row or more (test: exit code 1)",
            ),
            (
                Decision::Stop {
                    cause: StopCause::Budget,
                    reason: "token budget used up: 5040 of 4000 tokens".to_owned(),
                    fingerprint: None,
                },
                1,
                r#"{"event":"decision","iteration":1,"kind":"stop.budget","detail":{"reason":"token budget used up: 5040 of 4000 tokens"}}"#,
                "token budget used up: 5040 of 4000 tokens",
            ),
            (
                Decision::Retry {
                    failure: "leak: exit code 1".to_owned(),
                    fingerprint: "2a836c57700531fb".to_owned(),
                    repair_steps: 1,
                },
                1,
                r#"{"event":"decision","iteration":1,"kind":"retry","detail":{"failure":"leak: exit code 1","fingerprint":"2a836c57700531fb","repair_steps":1}}"#,
                "leak: exit code 1",
            ),
            (
                Decision::StepRetry {
                    step: "flaky".to_owned(),
                    attempt: 2,
                    of: 3,
                    previous: "exit code 1".to_owned(),
                },
                1,
                r#"{"event":"decision","iteration":1,"kind":"step.retry","detail":{"attempt":2,"of":3,"previous":"exit code 1","step":"flaky"}}"#,
                r#"attempt=2 of=3 previous="exit code 1" step=flaky"#,
            ),
            (
                Decision::VerifyBaseline {
                    step: "error-rate".to_owned(),
                    value: Ok(0.02),
                },
                1,
                r#"{"event":"decision","iteration":1,"kind":"verify.baseline","detail":{"step":"error-rate","value":0.02}}"#,
                "step=error-rate value=0.02",
            ),
            (
                Decision::OnSuccess {
                    reason: "all steps passed".to_owned(),
                    patches: 0,
                    steps: vec!["pr".to_owned()],
                },
                1,
                r#"{"event":"decision","iteration":1,"kind":"on_success","detail":{"patches":0,"reason":"all steps passed","steps":["pr"]}}"#,
                "all steps passed",
            ),
            (
                Decision::OnGiveUp {
                    reason: "interrupted".to_owned(),
                    steps: vec!["cleanup".to_owned()],
                },
                1,
                r#"{"event":"decision","iteration":1,"kind":"on_give_up","detail":{"reason":"interrupted","steps":["cleanup"]}}"#,
                "interrupted",
            ),
            (
                Decision::PatchApplied {
                    patch_sha256: patch.to_owned(),
                    files: vec![greet_sh()],
                    diff: "patches/iteration-1.diff".to_owned(),
                    diff_written: None,
                    summary: "applied patches/iteration-1.diff to `src/greet.sh`".to_owned(),
                },
                1,
                r#"{"event":"decision","iteration":1,"kind":"patch.applied","detail":{"diff":"patches/iteration-1.diff","diff_written":null,"files":[{"after_sha256":"021fa58d172bc2cda69676bbf2cf98c07e6924cf155d67a948725d8068cb4aad","before_sha256":"60160af6456c896e3d41170abe546348123281d898405e30bdadb9b101d76052","change":"modified","path":"src/greet.sh"}],"patch_sha256":"bbc4d8f099a4fbb9459141a68b6d20d72722278ff2de28f9767d7f3a392daecb","summary":"applied patches/iteration-1.diff to `src/greet.sh`"}}"#,
                "applied patches/iteration-1.diff to `src/greet.sh`",
            ),
            (
                Decision::PatchReverted {
                    patch_sha256: patch.to_owned(),
                    files: vec![greet_sh()],
                    reason: "fewer steps pass (0 instead of 1)".to_owned(),
                    summary: "reverted the patch of iteration 1: fewer steps pass (0 instead of 1)"
                        .to_owned(),
                },
                2,
                r#"{"event":"decision","iteration":2,"kind":"patch.reverted","detail":{"files":[{"after_sha256":"021fa58d172bc2cda69676bbf2cf98c07e6924cf155d67a948725d8068cb4aad","before_sha256":"60160af6456c896e3d41170abe546348123281d898405e30bdadb9b101d76052","change":"modified","path":"src/greet.sh"}],"patch_sha256":"bbc4d8f099a4fbb9459141a68b6d20d72722278ff2de28f9767d7f3a392daecb","reason":"fewer steps pass (0 instead of 1)","summary":"reverted the patch of iteration 1: fewer steps pass (0 instead of 1)"}}"#,
                "reverted the patch of iteration 1: fewer steps pass (0 instead of 1)",
            ),
            (
                Decision::PatchUnusable {
                    stage: PatchStage::Parse,
                    patch_sha256: None,
                    reason: "failed to parse the patch: no edit found: a unified diff, a V4A patch, SEARCH/REPLACE blocks or a whole file".to_owned(),
                },
                2,
                r#"{"event":"decision","iteration":2,"kind":"patch.unusable","detail":{"patch_sha256":null,"reason":"failed to parse the patch: no edit found: a unified diff, a V4A patch, SEARCH/REPLACE blocks or a whole file","stage":"parse"}}"#,
                "failed to parse the patch: no edit found: a unified diff, a V4A patch, SEARCH/REPLACE blocks or a whole file",
            ),
            (
                Decision::PolicyChecked {
                    decision: PolicyDecision {
                        verdict: crate::patch::Verdict::Deny,
                        human_approved: false,
                        patch_sha256: "deb7350b545a1ed4eacb7e61ec3a153b32c6730b026b4fb50a43d695cb5fb896".to_owned(),
                        files: vec!["tests/check.sh".to_owned()],
                        lines_added: 0,
                        lines_removed: 7,
                        rules: [
                            Rule::PathInsideRepo,
                            Rule::NoGitDir,
                            Rule::WorkflowFiles,
                            Rule::RunRecords,
                            Rule::NoBinary,
                            Rule::NeverDelete,
                            Rule::Protect,
                            Rule::MaxFiles,
                            Rule::MaxChangedLines,
                            Rule::RequireConfirmation,
                        ]
                        .into_iter()
                        .map(|rule| RuleCheck {
                            rule,
                            passed: rule != Rule::Protect,
                        })
                        .collect(),
                        violations: vec![Violation {
                            rule: Rule::Protect,
                            file: "tests/check.sh".to_owned(),
                            line: None,
                            pattern: Some("**/tests/**".to_owned()),
                            message: "the patch deletes a file protected by `protect` glob `**/tests/**`".to_owned(),
                        }],
                    },
                    edit_format: EditFormat::Unified,
                    summary: "patch denied by policy\n- `tests/check.sh`: the patch deletes a file protected by `protect` glob `**/tests/**`".to_owned(),
                },
                3,
                r#"{"event":"decision","iteration":3,"kind":"policy.decision","detail":{"decision":{"files":["tests/check.sh"],"human_approved":false,"lines_added":0,"lines_removed":7,"patch_sha256":"deb7350b545a1ed4eacb7e61ec3a153b32c6730b026b4fb50a43d695cb5fb896","rules":[{"passed":true,"rule":"path_inside_repo"},{"passed":true,"rule":"no_git_dir"},{"passed":true,"rule":"workflow_files"},{"passed":true,"rule":"run_records"},{"passed":true,"rule":"no_binary"},{"passed":true,"rule":"never_delete"},{"passed":false,"rule":"protect"},{"passed":true,"rule":"max_files"},{"passed":true,"rule":"max_changed_lines"},{"passed":true,"rule":"require_confirmation"}],"verdict":"deny","violations":[{"file":"tests/check.sh","line":null,"message":"the patch deletes a file protected by `protect` glob `**/tests/**`","pattern":"**/tests/**","rule":"protect"}]},"edit_format":"unified","summary":"patch denied by policy\n- `tests/check.sh`: the patch deletes a file protected by `protect` glob `**/tests/**`"}}"#,
                "patch denied by policy\n- `tests/check.sh`: the patch deletes a file protected by `protect` glob `**/tests/**`",
            ),
            review_verdict(),
        ]
    }

    /// The reviewer's answer, with the prompt and reply the fake OpenAI server was sent and
    /// gave (read back from the line, they are long).
    fn review_verdict() -> (Decision, u32, &'static str, &'static str) {
        const LINE: &str = r#"{"event":"decision","iteration":1,"kind":"review.verdict","detail":{"agent":"reviewer","model":"gpt-4o-mini","patch_sha256":"7cc92057a85453fe3dd7c81962ac2a48ab4bb4fd6d92bbfe17218d7e3d829a29","prompt":"Review a patch proposed to repair the step `test` (gate), which failed in iteration 1.\nIts failure message:\n<<<UNTRUSTED failure message faaba62b>>>\nexit code 1\n<<<END UNTRUSTED faaba62b>>>\n\nThe step, as written in the workflow:\n```yaml\n  - {id: test, gate: \"sh tests/check.sh\"}\n```\n\nThe deterministic patch policy already checked the patch:\n<<<UNTRUSTED policy decision f0675852>>>\npatch allowed by policy\n<<<END UNTRUSTED f0675852>>>\n\nThe step's log (first errors and the end):\n<<<UNTRUSTED log of step test ae3271bc>>>\n1 | FAIL: src/greet.sh printed 'Hello, wrld'\n<<<END UNTRUSTED ae3271bc>>>\n\nThe proposed patch:\n<<<UNTRUSTED proposed patch 7cc92057>>>\n--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo \"Hello, wrld\"\n+echo \"Hello, world\"\n<<<END UNTRUSTED 7cc92057>>>\n\nGive your verdict as the JSON object described in your instructions.","prompt_hash":"aa25fa50604c268b5af16daaaacca57b35b395dea8ce4d26cea79eb867fa8b8b","response":"{\"approved\": true, \"reason\": \"fixes the typo and nothing else\", \"risk\": \"low\", \"suggestion\": null}","structured":true,"summary":"approved (low risk): fixes the typo and nothing else","tokens":{"completion":30,"estimated":false,"prompt":120},"verdict":{"approved":true,"reason":"fixes the typo and nothing else","risk":"low","suggestion":null}}}"#;
        let written: serde_json::Value = serde_json::from_str(LINE).unwrap_or_default();
        let text = |key: &str| {
            written["detail"][key]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let decision = Decision::ReviewVerdict {
            exchange: AgentExchange {
                agent: "reviewer".to_owned(),
                model: "gpt-4o-mini".to_owned(),
                prompt: text("prompt"),
                prompt_hash: "aa25fa50604c268b5af16daaaacca57b35b395dea8ce4d26cea79eb867fa8b8b"
                    .to_owned(),
                response: text("response"),
                tokens: Tokens {
                    prompt: 120,
                    completion: 30,
                    estimated: false,
                },
                summary: "approved (low risk): fixes the typo and nothing else".to_owned(),
            },
            verdict: Verdict {
                approved: true,
                reason: "fixes the typo and nothing else".to_owned(),
                risk: Risk::Low,
                suggestion: None,
            },
            structured: true,
            patch_sha256: "7cc92057a85453fe3dd7c81962ac2a48ab4bb4fd6d92bbfe17218d7e3d829a29"
                .to_owned(),
        };
        (
            decision,
            1,
            LINE,
            "approved (low risk): fixes the typo and nothing else",
        )
    }

    #[test]
    fn a_decision_is_written_as_its_free_form_detail_was() {
        for (decision, iteration, line, summary) in written_before() {
            assert_eq!(decision.summary(), summary, "{line}");
            let event = Event::Decision {
                iteration,
                decision,
            };
            assert_eq!(
                serde_json::to_string(&event).unwrap_or_default(),
                line,
                "{event:?}"
            );
        }
    }

    #[test]
    fn only_agent_answers_carry_tokens_and_only_patch_decisions_a_patch() {
        let tokens: Vec<(&str, Option<Tokens>)> = written_before()
            .iter()
            .map(|(decision, ..)| (decision.kind(), decision.tokens()))
            .filter(|(_, tokens)| tokens.is_some())
            .collect();
        let used = Tokens {
            prompt: 120,
            completion: 30,
            estimated: false,
        };
        assert_eq!(tokens, [("review.verdict", Some(used))]);
        let patches: Vec<&str> = written_before()
            .iter()
            .filter(|(decision, ..)| decision.patch_sha256().is_some())
            .map(|(decision, ..)| decision.kind())
            .collect();
        assert_eq!(
            patches,
            ["patch.applied", "patch.reverted", "review.verdict"]
        );
    }

    /// Every kind, with `text` in every text field.
    fn every_kind(text: &str) -> Vec<Decision> {
        let text = || text.to_owned();
        let exchange = || AgentExchange {
            agent: text(),
            model: text(),
            prompt: text(),
            prompt_hash: text(),
            response: text(),
            tokens: Tokens::default(),
            summary: text(),
        };
        let file = || PatchedFile {
            path: text(),
            change: FileChange::Modified,
            before_sha256: Some(text()),
            after_sha256: Some(text()),
        };
        vec![
            Decision::Stop {
                cause: StopCause::Agent,
                reason: text(),
                fingerprint: Some(text()),
            },
            Decision::Retry {
                failure: text(),
                fingerprint: text(),
                repair_steps: 1,
            },
            Decision::StepRetry {
                step: text(),
                attempt: 2,
                of: 3,
                previous: text(),
            },
            Decision::VerifyBaseline {
                step: text(),
                value: Err(text()),
            },
            Decision::OnSuccess {
                reason: text(),
                patches: 1,
                steps: vec![text()],
            },
            Decision::OnGiveUp {
                reason: text(),
                steps: vec![text()],
            },
            Decision::FixProposal {
                exchange: exchange(),
                edit_format: EditFormat::WholeFile,
            },
            Decision::ReviewVerdict {
                exchange: exchange(),
                verdict: Verdict {
                    approved: false,
                    reason: text(),
                    risk: Risk::High,
                    suggestion: Some(text()),
                },
                structured: false,
                patch_sha256: text(),
            },
            Decision::PolicyChecked {
                decision: PolicyDecision {
                    verdict: crate::patch::Verdict::NeedsApproval,
                    human_approved: false,
                    patch_sha256: text(),
                    files: vec![text()],
                    lines_added: 1,
                    lines_removed: 0,
                    rules: Vec::new(),
                    violations: vec![Violation {
                        rule: Rule::RequireConfirmation,
                        file: text(),
                        line: Some(1),
                        pattern: Some(text()),
                        message: text(),
                    }],
                },
                edit_format: EditFormat::SearchReplace,
                summary: text(),
            },
            Decision::PatchApplied {
                patch_sha256: text(),
                files: vec![file()],
                diff: text(),
                diff_written: Some(text()),
                summary: text(),
            },
            Decision::PatchUnusable {
                stage: PatchStage::Apply,
                patch_sha256: Some(text()),
                reason: text(),
            },
            Decision::PatchKept {
                patch_sha256: text(),
                summary: text(),
            },
            Decision::PatchReverted {
                patch_sha256: text(),
                files: vec![file()],
                reason: text(),
                summary: text(),
            },
            Decision::PatchRevertFailed {
                patch_sha256: text(),
                error: text(),
                summary: text(),
            },
        ]
    }

    #[test]
    fn every_text_of_every_kind_is_redacted() {
        let redactor = Redactor::builder().secret("hunter2-pw").build();
        for mut decision in every_kind("see hunter2-pw") {
            let before = serde_json::to_string(&decision).unwrap_or_default();
            decision.redact(&redactor);
            let after = serde_json::to_string(&decision).unwrap_or_default();
            assert!(!after.contains("hunter2-pw"), "{after}");
            assert_eq!(
                after.matches("see ***").count(),
                before.matches("see hunter2-pw").count(),
                "{after}"
            );
            assert!(!decision.summary().contains("hunter2-pw"), "{after}");
        }
    }
}
