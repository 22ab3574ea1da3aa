//! The iteration loop of design.md: run the steps; on a required failure, fingerprint it,
//! stop if there is no progress or no budget left, otherwise repair and try again; when giving
//! up (or interrupted), run `on_give_up`. After a success, `on_success` runs once (delivering
//! the patches applied: `pull_request`) and the workflow's `outputs` are rendered. The repair
//! phase's own logic (agents, policy, applying and reverting patches) lives in
//! [`super::repair`].
//!
//! `run.source_hash` is computed from the checkout's files before every iteration, so it
//! follows each patch applied (and reverted) in the repair phase before it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::decision::{Decision, StopCause};
use super::events::{Event, RunOutcome};
use super::fingerprint::{FailureSignature, fingerprint};
use super::interrupt::Interrupts;
use super::repair::{IterationState, Repair};
use super::reporter::Reporter;
use super::run_state::EngineRunState;
use super::settings::RunSettings;
use super::template_context::TemplateContext;
use crate::azure::sign_in::AzureSignIn;
use crate::cluster::ledger::DeployLedger;
use crate::redact::Redactor;
use crate::steps::pull_request::Delivery;
use crate::steps::service::Services;
use crate::steps::verify::baseline::{self, Baselines};
use crate::steps::{self, RunInfo, StepContext, StepOutcome, StepStatus};
use crate::workflow::model::{Phase, Step, StepKind, Workflow};

/// How long a step may overrun its own `timeout` before the engine abandons it (dropping the
/// step kills its process group).
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub outcome: RunOutcome,
    pub reason: String,
    pub iterations: u32,
}

/// The first required failure of an iteration.
struct Failure<'a> {
    step: &'a Step,
    step_id: String,
    kind: &'static str,
    outcome: Arc<StepOutcome>,
}

impl Failure<'_> {
    fn describe(&self) -> String {
        format!("{}: {}", self.step_id, self.outcome.message)
    }
}

#[derive(Default)]
struct PhaseResult<'a> {
    failure: Option<Failure<'a>>,
    optional_failures: usize,
    passed: usize,
    cancelled: bool,
}

pub struct Engine<'a> {
    workflow: &'a Workflow,
    settings: &'a RunSettings,
    reporter: &'a mut dyn Reporter,
    interrupts: Interrupts,
    context: TemplateContext,
    services: Services,
    /// What this run deployed, for rollbacks (kept in the artifacts folder as well).
    deployments: DeployLedger,
    repair: Repair<'a>,
    /// The run's redactor: steps apply it to everything they write.
    redactor: Redactor,
    /// What `on_success` steps deliver; set when that phase starts.
    delivery: Option<Delivery>,
    azure: AzureSignIn,
    /// Metric checks' values from before the run's first deploy step.
    baselines: Baselines,
    started: Instant,
}

impl<'a> Engine<'a> {
    pub fn new(
        workflow: &'a Workflow,
        settings: &'a RunSettings,
        context: TemplateContext,
        reporter: &'a mut dyn Reporter,
        interrupts: Interrupts,
        deployments: DeployLedger,
        redactor: Redactor,
    ) -> Self {
        let repair = Repair::new(workflow, settings, redactor.clone());
        Self {
            workflow,
            settings,
            reporter,
            interrupts,
            context,
            services: Services::default(),
            deployments,
            repair,
            redactor,
            delivery: None,
            azure: AzureSignIn::default(),
            baselines: Baselines::default(),
            started: Instant::now(),
        }
    }

    /// How deploy and rollback steps sign in to Azure (AKS clusters).
    pub fn with_azure(mut self, azure: AzureSignIn) -> Self {
        self.azure = azure;
        self
    }

    pub async fn run(mut self) -> RunSummary {
        self.emit(Event::RunStarted {
            run_id: self.settings.run_id.clone(),
            workflow: self.workflow.name.value.clone(),
            workflow_path: self.settings.workflow_path.clone(),
            environment: self.settings.environment.clone(),
            artifacts_dir: self.settings.artifacts_dir.clone(),
            max_iterations: self.settings.max_iterations,
            at: SystemTime::now(),
        });
        let mut summary = self.iterate().await;
        if matches!(
            summary.outcome,
            RunOutcome::Succeeded | RunOutcome::SucceededWithIssues
        ) {
            self.after_success(&mut summary).await;
        }
        // `on_give_up` and `on_success` may have started services too.
        self.services.stop_all().await;
        self.emit(Event::RunFinished {
            outcome: summary.outcome,
            reason: summary.reason.clone(),
            iterations: summary.iterations,
            duration: self.started.elapsed(),
        });
        summary
    }

    async fn iterate(&mut self) -> RunSummary {
        let max_iterations = if self.settings.dry_run {
            1
        } else {
            self.settings.max_iterations
        };
        let mut seen: HashMap<String, u32> = HashMap::new();
        let mut iteration = 0;
        let mut optional_failures = 0;
        loop {
            iteration += 1;
            self.context.start_iteration(iteration);
            self.refresh_source_hash().await;
            self.emit(Event::IterationStarted { iteration });
            let result = self
                .run_phase(iteration, Phase::Steps, &self.workflow.steps)
                .await;
            optional_failures += result.optional_failures;

            if result.cancelled {
                self.finish_iteration(iteration, None, None).await;
                return self
                    .give_up(iteration, RunOutcome::Interrupted, "interrupted".into())
                    .await;
            }
            let Some(failure) = result.failure else {
                self.finish_iteration(iteration, None, None).await;
                let outcome = if optional_failures > 0 {
                    RunOutcome::SucceededWithIssues
                } else {
                    RunOutcome::Succeeded
                };
                let reason = match (self.settings.dry_run, optional_failures) {
                    (true, _) => "dry run: nothing was executed".to_owned(),
                    (false, 0) => "all steps passed".to_owned(),
                    (false, n) => format!("all required steps passed; {n} optional step(s) failed"),
                };
                return RunSummary {
                    outcome,
                    reason,
                    iterations: iteration,
                };
            };

            let fingerprint = fingerprint(&FailureSignature {
                step_id: &failure.step_id,
                kind: failure.kind,
                message: &failure.outcome.message,
                output_tail: &failure.outcome.output_tail,
            });
            self.finish_iteration(iteration, Some(&fingerprint), Some(&failure))
                .await;
            let state = IterationState {
                fingerprint: fingerprint.clone(),
                failing_steps: result.optional_failures + 1,
                passed_steps: result.passed,
            };
            // Reverting a patch that did not help comes before any stop: a run never ends with
            // a failed repair attempt left in the files.
            self.repair.after_failed_iteration(
                iteration,
                state,
                failure.step,
                &failure.outcome,
                &mut *self.reporter,
            );
            let count = seen.entry(fingerprint.clone()).or_default();
            // A repair phase that changed nothing (a rejected or unusable patch) is not a try
            // that failed to make progress: the failure is bound to repeat.
            if !self.repair.last_phase_changed_nothing() {
                *count += 1;
            }

            let stop = if *count >= self.workflow.safety.no_progress_threshold {
                Some((
                    StopCause::NoProgress,
                    format!(
                        "no progress: the same failure {} times in a row or more ({})",
                        count,
                        failure.describe()
                    ),
                ))
            } else if iteration >= max_iterations {
                Some((
                    StopCause::MaxIterations,
                    format!(
                        "reached max iterations ({max_iterations}); last failure: {}",
                        failure.describe()
                    ),
                ))
            } else {
                self.wall_time_exceeded().map(|limit| {
                    (
                        StopCause::Budget,
                        format!(
                            "wall-time budget of {} used up; last failure: {}",
                            humantime::format_duration(limit),
                            failure.describe()
                        ),
                    )
                })
            };
            if let Some((cause, reason)) = stop {
                self.emit(Event::Decision {
                    iteration,
                    decision: Decision::Stop {
                        cause,
                        reason: reason.clone(),
                        fingerprint: Some(fingerprint),
                    },
                });
                return self.give_up(iteration, RunOutcome::Failed, reason).await;
            }

            self.emit(Event::Decision {
                iteration,
                decision: Decision::Retry {
                    failure: failure.describe(),
                    fingerprint,
                    repair_steps: self.workflow.repair.len(),
                },
            });
            if !self.workflow.repair.is_empty() {
                self.repair.begin_phase();
                let repair = self
                    .run_phase(iteration, Phase::Repair, &self.workflow.repair)
                    .await;
                if repair.cancelled {
                    return self
                        .give_up(iteration, RunOutcome::Interrupted, "interrupted".into())
                        .await;
                }
                if let Some(stop) = self.repair.take_stop() {
                    self.emit(Event::Decision {
                        iteration,
                        decision: Decision::Stop {
                            cause: stop.cause,
                            reason: stop.reason.clone(),
                            fingerprint: None,
                        },
                    });
                    return self
                        .give_up(iteration, RunOutcome::Failed, stop.reason)
                        .await;
                }
            }
        }
    }

    /// `run.source_hash` for the files as they are now (undefined outside a git checkout).
    async fn refresh_source_hash(&mut self) {
        let hash = crate::git::source_hash(&self.settings.workdir, &self.settings.artifacts_dir)
            .await
            .ok();
        self.context.set_source_hash(hash);
    }

    /// Runs `on_success`, then renders the outputs. A failed `on_success` step leaves the run
    /// succeeded with issues (what was deployed and verified stays so); outputs that cannot be
    /// rendered fail it, since a later stage would deploy without them.
    async fn after_success(&mut self, summary: &mut RunSummary) {
        let iteration = summary.iterations;
        if !self.workflow.on_success.is_empty() {
            self.emit(Event::Decision {
                iteration,
                decision: Decision::OnSuccess {
                    reason: summary.reason.clone(),
                    patches: self.repair.delivered_patches().len(),
                    steps: self
                        .workflow
                        .on_success
                        .iter()
                        .map(|s| s.id.value.clone())
                        .collect(),
                },
            });
            self.delivery = Some(Delivery {
                run_id: self.settings.run_id.clone(),
                workflow: self.workflow.name.value.clone(),
                environment: self.settings.environment.clone(),
                summary: format!(
                    "{} after {} iteration(s)",
                    summary.reason, summary.iterations
                ),
                patches: self.repair.delivered_patches().to_vec(),
                audit_head: self.reporter.audit_head(),
            });
            let result = self
                .run_phase(iteration, Phase::OnSuccess, &self.workflow.on_success)
                .await;
            if result.cancelled {
                summary.outcome = RunOutcome::Interrupted;
                summary.reason = "interrupted".into();
                return;
            }
            if let Some(failure) = &result.failure {
                summary.outcome = RunOutcome::SucceededWithIssues;
                summary.reason = format!(
                    "{}; on_success step `{}` failed: {}",
                    summary.reason, failure.step_id, failure.outcome.message
                );
            } else if result.optional_failures > 0 {
                summary.outcome = RunOutcome::SucceededWithIssues;
            }
        }
        if self.settings.dry_run || self.workflow.outputs.is_empty() {
            return;
        }
        match self.context.render_outputs(&self.workflow.outputs) {
            Ok(outputs) => self.emit(Event::OutputsRendered { outputs }),
            Err((name, err)) => {
                summary.outcome = RunOutcome::Failed;
                summary.reason = format!("output `{name}` cannot be rendered: {err}");
            }
        }
    }

    fn wall_time_exceeded(&self) -> Option<Duration> {
        let limit = self.workflow.safety.budget.wall_time?.0;
        (self.started.elapsed() >= limit).then_some(limit)
    }

    /// Stops the iteration's services (the next one starts the repaired code) and reports it.
    async fn finish_iteration(
        &mut self,
        iteration: u32,
        fingerprint: Option<&str>,
        failure: Option<&Failure<'_>>,
    ) {
        self.services.stop_all().await;
        self.emit(Event::IterationFinished {
            iteration,
            passed: failure.is_none(),
            fingerprint: fingerprint.map(str::to_owned),
            failure: failure.map(Failure::describe),
        });
    }

    /// Runs `on_give_up` (also after an interrupt, until a second one) and ends the run.
    async fn give_up(&mut self, iteration: u32, outcome: RunOutcome, reason: String) -> RunSummary {
        if !self.workflow.on_give_up.is_empty() && !self.settings.dry_run {
            self.emit(Event::Decision {
                iteration,
                decision: Decision::OnGiveUp {
                    reason: reason.clone(),
                    steps: self
                        .workflow
                        .on_give_up
                        .iter()
                        .map(|s| s.id.value.clone())
                        .collect(),
                },
            });
            self.run_phase(iteration, Phase::OnGiveUp, &self.workflow.on_give_up)
                .await;
        }
        RunSummary {
            outcome,
            reason,
            iterations: iteration,
        }
    }

    async fn run_phase(
        &mut self,
        iteration: u32,
        phase: Phase,
        steps: &'a [Step],
    ) -> PhaseResult<'a> {
        let mut result = PhaseResult::default();
        let cancel = match phase {
            Phase::OnGiveUp => self.interrupts.cleanup.clone(),
            Phase::Steps | Phase::Repair | Phase::OnSuccess => self.interrupts.run.clone(),
        };
        for (index, step) in steps.iter().enumerate() {
            let started = Instant::now();
            // Steps that will not run get no "started" line, only their finished status.
            let not_run = if cancel.is_cancelled() {
                Some(StepOutcome::new(
                    StepStatus::Cancelled,
                    "not started: the run was interrupted",
                ))
            } else {
                result
                    .failure
                    .as_ref()
                    .filter(|_| phase != Phase::OnGiveUp)
                    .map(|failure| {
                        StepOutcome::new(
                            StepStatus::Skipped,
                            format!("skipped: required step `{}` failed", failure.step_id),
                        )
                    })
            };
            let outcome = match not_run {
                Some(outcome) => outcome,
                None => {
                    if phase == Phase::Steps
                        && matches!(step.kind, StepKind::Deploy(_))
                        && !self.baselines.taken()
                        && !self.settings.dry_run
                    {
                        self.take_baselines(iteration, &cancel).await;
                    }
                    self.emit(Event::StepStarted {
                        iteration,
                        phase,
                        step_id: step.id.value.clone(),
                        step_name: step.display_name().to_owned(),
                        kind: step.kind.key(),
                        index: index + 1,
                        total: steps.len(),
                    });
                    self.run_step(iteration, phase, step, &cancel).await
                }
            };
            let outcome = Arc::new(outcome);
            self.context.record_step(&step.id.value, &outcome);
            self.emit(Event::StepFinished {
                iteration,
                phase,
                step_id: step.id.value.clone(),
                step_name: step.display_name().to_owned(),
                kind: step.kind.key(),
                required: step.required,
                duration: started.elapsed(),
                outcome: Arc::clone(&outcome),
            });
            match outcome.status {
                StepStatus::Cancelled => result.cancelled = true,
                StepStatus::Failed | StepStatus::Inconclusive if !step.required => {
                    result.optional_failures += 1;
                }
                StepStatus::Failed | StepStatus::Inconclusive => {
                    if result.failure.is_none() {
                        result.failure = Some(Failure {
                            step,
                            step_id: step.id.value.clone(),
                            kind: step.kind.key(),
                            outcome,
                        });
                    }
                }
                StepStatus::Passed => result.passed += 1,
                StepStatus::Skipped => {}
            }
        }
        result
    }

    /// Measures the baselines of the metric checks that compare with one, once per run, just
    /// before its first deploy step: the values of what was live before the run changed it.
    async fn take_baselines(
        &mut self,
        iteration: u32,
        cancel: &tokio_util::sync::CancellationToken,
    ) {
        self.baselines.mark_taken();
        let run = self.run_info(iteration);
        let workflow = self.workflow;
        for step in workflow
            .steps
            .iter()
            .filter(|step| crate::workflow::step_config::verify::needs_baseline(step))
        {
            let value = match self.context.renderer_for(step) {
                Err(err) => Err(err.to_string()),
                Ok(renderer) => {
                    let ctx = StepContext {
                        step,
                        run: &run,
                        renderer: &renderer,
                        log_path: self
                            .settings
                            .artifacts_dir
                            .join("steps")
                            .join(format!("{iteration}-{}", Phase::Steps.key()))
                            .join(format!("{}.baseline.log", step.id.value)),
                        echo: self.settings.echo,
                        cancel: cancel.child_token(),
                        timeout: step.timeout.map(|t| t.0),
                        services: &self.services,
                        deployments: &self.deployments,
                        redactor: &self.redactor,
                        azure: &self.azure,
                        baselines: &self.baselines,
                        run_state: None,
                    };
                    baseline::measure(&ctx)
                        .await
                        .unwrap_or_else(|| Err("not a metric check".to_owned()))
                }
            };
            self.emit(Event::Decision {
                iteration,
                decision: Decision::VerifyBaseline {
                    step: step.id.value.clone(),
                    value: value.clone(),
                },
            });
            self.baselines.insert(&step.id.value, value);
        }
    }

    fn run_info(&self, iteration: u32) -> RunInfo {
        RunInfo {
            run_id: self.settings.run_id.clone(),
            iteration,
            workdir: self.settings.workdir.clone(),
            artifacts_dir: self.settings.artifacts_dir.clone(),
        }
    }

    /// One step, with its `if`, `retries` and `timeout`.
    async fn run_step(
        &mut self,
        iteration: u32,
        phase: Phase,
        step: &Step,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> StepOutcome {
        let renderer = match self.context.renderer_for(step) {
            Ok(renderer) => renderer,
            Err(err) => return StepOutcome::failed(err.to_string()),
        };
        if let Some(condition) = &step.condition {
            match renderer.evaluate_condition(condition) {
                Ok(true) => {}
                Ok(false) => {
                    return StepOutcome::new(
                        StepStatus::Skipped,
                        format!("skipped: `if: {}` is false", condition.source()),
                    );
                }
                Err(err) => return StepOutcome::failed(format!("cannot evaluate `if`: {err}")),
            }
        }
        let run = self.run_info(iteration);
        let timeout = step.timeout.map(|t| t.0);
        let mut attempt = 0;
        loop {
            let log_name = match attempt {
                0 => format!("{}.log", step.id.value),
                n => format!("{}.attempt-{}.log", step.id.value, n + 1),
            };
            let mut run_state = EngineRunState {
                repair: &mut self.repair,
                reporter: &mut *self.reporter,
                delivery: self.delivery.as_ref(),
            };
            let mut ctx = StepContext {
                step,
                run: &run,
                renderer: &renderer,
                log_path: self
                    .settings
                    .artifacts_dir
                    .join("steps")
                    .join(format!("{iteration}-{}", phase.key()))
                    .join(log_name),
                echo: self.settings.echo,
                cancel: cancel.child_token(),
                timeout,
                services: &self.services,
                deployments: &self.deployments,
                redactor: &self.redactor,
                azure: &self.azure,
                baselines: &self.baselines,
                run_state: Some(&mut run_state),
            };
            if let Some(dir) = ctx.log_path.parent()
                && let Err(err) = std::fs::create_dir_all(dir)
            {
                return StepOutcome::failed(format!(
                    "cannot create log folder `{}`: {err}",
                    dir.display()
                ));
            }
            let outcome = if self.settings.dry_run {
                StepOutcome::new(
                    StepStatus::Skipped,
                    format!("dry run: {}", steps::describe(&ctx)),
                )
            } else {
                with_backstop(steps::run(&mut ctx), timeout).await
            };
            let retry = matches!(
                outcome.status,
                StepStatus::Failed | StepStatus::Inconclusive
            ) && attempt < step.retries
                && !cancel.is_cancelled()
                && !self.repair.stopped();
            if !retry {
                return outcome;
            }
            attempt += 1;
            self.emit(Event::Decision {
                iteration,
                decision: Decision::StepRetry {
                    step: step.id.value.clone(),
                    attempt: attempt + 1,
                    of: step.retries + 1,
                    previous: outcome.message,
                },
            });
        }
    }

    fn emit(&mut self, event: Event) {
        // A reporter that cannot write must not stop a deploy half-way; it reports at finish.
        let _ = self.reporter.on_event(&event);
    }
}

/// Runs the step; if it overruns its own timeout by more than the grace period, drop it (which
/// kills its processes) and report the timeout.
async fn with_backstop(
    step: impl Future<Output = StepOutcome>,
    timeout: Option<Duration>,
) -> StepOutcome {
    match timeout {
        None => step.await,
        Some(limit) => match tokio::time::timeout(limit + TIMEOUT_GRACE, step).await {
            Ok(outcome) => outcome,
            Err(_) => StepOutcome::timed_out(limit),
        },
    }
}
