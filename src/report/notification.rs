//! [`Notifications`]: the workflow's `notify:` targets, resolved before the run, fed the run's
//! (masked) events as a [`Reporter`], and sent once the run has ended.
//!
//! What a target hears is decided here, from the events: `give_up` for a run that failed or
//! was interrupted, `success` for one that succeeded, `rollback` when a rollback step restored something,
//! `pull_request` when a `pull_request` step published its `url`. A target gets one message
//! if any of its `on:` events happened.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use super::Reporter;
use crate::engine::events::{Event, RunOutcome};
use crate::notify::{Channel, Destination, FailedStep, Notice, NotifyError, send_all};
use crate::steps::StepStatus;
use crate::workflow::model::{NotifyEvent, NotifyTarget, Phase};
use crate::workflow::template::Renderer;

pub struct Notifications {
    destinations: Vec<(Destination, Vec<NotifyEvent>)>,
    notice: Arc<Mutex<Notice>>,
}

impl Notifications {
    /// Renders each target's URL. A URL that does not render is left out with a warning (the
    /// run goes on: a notification is never a reason to fail).
    pub fn prepare(
        targets: &[NotifyTarget],
        renderer: &Renderer,
        run_link: Option<String>,
    ) -> (Self, Vec<String>) {
        let mut destinations = Vec::new();
        let mut warnings = Vec::new();
        for (index, target) in targets.iter().enumerate() {
            let (channel, template) = match (&target.teams, &target.slack, &target.webhook) {
                (Some(url), _, _) => (Channel::Teams, url),
                (_, Some(url), _) => (Channel::Slack, url),
                (_, _, Some(url)) => (Channel::Webhook, url),
                // The loader refuses a target without a channel.
                (None, None, None) => continue,
            };
            let label = format!("{} notification {}", channel.name(), index + 1);
            match renderer.render(template) {
                Ok(url) => destinations.push((
                    Destination {
                        channel,
                        url,
                        label,
                    },
                    target.on.clone(),
                )),
                Err(err) => warnings.push(format!("{label} is left out: {}", err.reason())),
            }
        }
        let notice = Notice {
            run_link,
            ..Notice::default()
        };
        (
            Self {
                destinations,
                notice: Arc::new(Mutex::new(notice)),
            },
            warnings,
        )
    }

    /// No target could be resolved: nothing to send.
    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty()
    }

    /// The reporter that gathers what the notice says from the run's events.
    pub fn report(&self) -> NotificationReport {
        NotificationReport {
            notice: Arc::clone(&self.notice),
        }
    }

    /// Sends the notice to every target whose events happened; returns one warning per
    /// failed send. Does nothing for a run that never finished.
    pub async fn send(&self, client: &reqwest::Client) -> Vec<NotifyError> {
        let notice = self
            .notice
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if notice.outcome.is_empty() {
            return Vec::new();
        }
        let destinations: Vec<Destination> = self
            .destinations
            .iter()
            .filter(|(_, on)| {
                on.iter().any(|event| {
                    notice
                        .events
                        .iter()
                        .any(|happened| happened == event_name(*event))
                })
            })
            .map(|(destination, _)| destination.clone())
            .collect();
        send_all(client, &destinations, &notice).await
    }
}

fn event_name(event: NotifyEvent) -> &'static str {
    match event {
        NotifyEvent::Success => "success",
        NotifyEvent::GiveUp => "give_up",
        NotifyEvent::Rollback => "rollback",
        NotifyEvent::PullRequest => "pull_request",
    }
}

/// Fills the shared [`Notice`] as events arrive (already masked by `Reporters`).
pub struct NotificationReport {
    notice: Arc<Mutex<Notice>>,
}

impl Reporter for NotificationReport {
    fn name(&self) -> &str {
        "notifications"
    }

    fn on_event(&mut self, event: &Event) -> io::Result<()> {
        let mut notice = self.notice.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::RunStarted {
                run_id,
                workflow,
                environment,
                artifacts_dir,
                ..
            } => {
                notice.run_id.clone_from(run_id);
                notice.workflow.clone_from(workflow);
                notice.environment.clone_from(environment);
                notice.artifacts = artifacts_dir.display().to_string();
            }
            Event::StepFinished {
                phase,
                step_id,
                kind,
                required,
                outcome,
                ..
            } => {
                let passed = outcome.status == StepStatus::Passed;
                let failed = matches!(
                    outcome.status,
                    StepStatus::Failed | StepStatus::Inconclusive
                );
                // The iteration's first required failure: steps skipped after it are not news.
                if *phase == Phase::Steps && *required && failed && notice.failed_step.is_none() {
                    notice.failed_step = Some(FailedStep {
                        id: step_id.clone(),
                        message: outcome.message.clone(),
                    });
                }
                // A rollback with nothing to restore passes too; only a real one is news.
                if *kind == "rollback"
                    && passed
                    && outcome
                        .outputs
                        .get("rolled_back")
                        .is_some_and(|restored| !restored.is_empty())
                {
                    notice.rolled_back = true;
                }
                if *kind == "pull_request"
                    && passed
                    && let Some(url) = outcome.outputs.get("url")
                {
                    notice.pull_request = Some(url.clone());
                }
            }
            Event::IterationStarted { .. } => notice.failed_step = None,
            Event::RunFinished {
                outcome,
                reason,
                iterations,
                duration,
            } => {
                notice.outcome = outcome.as_str().to_owned();
                notice.reason.clone_from(reason);
                notice.iterations = *iterations;
                notice.duration_seconds = duration.as_secs_f64();
                let mut events = vec![match outcome {
                    RunOutcome::Succeeded | RunOutcome::SucceededWithIssues => "success",
                    RunOutcome::Failed | RunOutcome::Interrupted => "give_up",
                }];
                if notice.rolled_back {
                    events.push("rollback");
                }
                if notice.pull_request.is_some() {
                    events.push("pull_request");
                }
                notice.events = events.into_iter().map(str::to_owned).collect();
            }
            Event::IterationFinished { .. }
            | Event::OutputsRendered { .. }
            | Event::StepStarted { .. }
            | Event::Decision { .. } => {}
        }
        Ok(())
    }
}
