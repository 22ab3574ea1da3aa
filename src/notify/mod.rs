//! Notifications: how a run ended, posted to a Microsoft Teams workflow webhook (an Adaptive
//! Card), a Slack incoming webhook, or any URL that takes JSON.
//!
//! A notification is a courtesy, never part of the run's result: each send is bounded in time,
//! a failure comes back as a [`NotifyError`] for the caller to print as a warning, and an error
//! never names the URL (a webhook URL is a credential: whoever has it can post).

mod payload;

use std::time::Duration;

use serde::Serialize;

use crate::core::error_chain::error_chain;

/// How long one webhook may take before it is given up on.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The kind of service a URL belongs to, which decides the body's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Teams,
    Slack,
    Webhook,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Teams => "teams",
            Channel::Slack => "slack",
            Channel::Webhook => "webhook",
        }
    }
}

/// One place to post to.
#[derive(Clone)]
pub struct Destination {
    pub channel: Channel,
    /// Secret: never printed.
    pub url: String,
    /// What messages call it: `teams notification 1`.
    pub label: String,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("channel", &self.channel)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// How a run ended, in the words every channel's message is built from. The generic webhook
/// gets it as it is, as JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Notice {
    pub run_id: String,
    pub workflow: String,
    pub environment: Option<String>,
    /// `succeeded`, `succeeded_with_issues`, `failed` or `interrupted`.
    pub outcome: String,
    /// What made the run worth a message: `success`, `give_up`, `rollback`, `pull_request`.
    pub events: Vec<String>,
    /// Why the run stopped, in one line.
    pub reason: String,
    pub failed_step: Option<FailedStep>,
    pub iterations: u32,
    pub duration_seconds: f64,
    pub rolled_back: bool,
    pub pull_request: Option<String>,
    /// The pipeline run, in a pipeline; else absent.
    pub run_link: Option<String>,
    /// Where the reports are.
    pub artifacts: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedStep {
    pub id: String,
    pub message: String,
}

impl Notice {
    /// The one line a person reads first: `fleet-deploy on staging gave up: no progress`.
    pub fn headline(&self) -> String {
        let subject = match &self.environment {
            Some(environment) => format!("{} on {environment}", self.workflow),
            None => self.workflow.clone(),
        };
        let verb = match self.outcome.as_str() {
            "succeeded" => "succeeded",
            "succeeded_with_issues" => "succeeded with issues",
            "interrupted" => "was interrupted",
            _ => "gave up",
        };
        let rolled_back = if self.rolled_back {
            " and rolled back"
        } else {
            ""
        };
        if self.outcome.starts_with("succeeded") {
            format!("{subject} {verb}{rolled_back}")
        } else {
            format!("{subject} {verb}{rolled_back}: {}", self.reason)
        }
    }

    fn succeeded(&self) -> bool {
        self.outcome.starts_with("succeeded")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{label} failed: {reason}")]
pub struct NotifyError {
    pub label: String,
    pub reason: String,
}

/// Posts `notice` to every destination at once; returns the failures.
pub async fn send_all(
    client: &reqwest::Client,
    destinations: &[Destination],
    notice: &Notice,
) -> Vec<NotifyError> {
    let sends = destinations
        .iter()
        .map(|destination| send(client, destination, notice));
    futures::future::join_all(sends)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

async fn send(
    client: &reqwest::Client,
    destination: &Destination,
    notice: &Notice,
) -> Result<(), NotifyError> {
    let fail = |reason: String| NotifyError {
        label: destination.label.clone(),
        reason,
    };
    let body = payload::body(destination.channel, notice);
    let response = client
        .post(&destination.url)
        .timeout(SEND_TIMEOUT)
        .json(&body)
        .send()
        .await
        // The URL is a credential: reqwest's message would carry it.
        .map_err(|err| fail(error_chain(&err.without_url())))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(200).collect();
    Err(fail(if text.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {text}")
    }))
}
