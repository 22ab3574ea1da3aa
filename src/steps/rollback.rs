//! `rollback`: undo what this run deployed, restoring the revisions live before it started.
//!
//! It reads the run's [`DeployLedger`](crate::cluster::ledger::DeployLedger): every workload
//! (Deployment, StatefulSet, DaemonSet) a deploy step changed (or only those of the step named
//! in `deployment`), newest first. Nothing deployed is a pass, not an error, and so is a second
//! rollback: see `crate::cluster::rollback`.

use std::time::Instant;

use indexmap::IndexMap;

use super::step_log::StepLog;
use super::{StepContext, StepOutcome, StepStatus};
use crate::cluster::access::{Cluster, RetryPolicy};
use crate::cluster::rollback::{RollbackAction, rollback};
use crate::cluster::rollout::WaitOptions;
use crate::workflow::step_config::rollback::RollbackConfig;

/// For `--dry-run`.
pub fn describe(_config: &RollbackConfig, _ctx: &StepContext<'_>) -> String {
    "would roll back what this run deployed".to_owned()
}

pub async fn run(config: &RollbackConfig, ctx: &StepContext<'_>) -> StepOutcome {
    let mut log = StepLog::open(&ctx.log_path, ctx.echo);
    let mut outcome = tokio::select! {
        outcome = roll_back(config, ctx, &mut log) => outcome,
        () = ctx.cancel.cancelled() => StepOutcome::new(StepStatus::Cancelled, "cancelled"),
    };
    log.line(&outcome.message);
    outcome.output_tail = log.tail();
    outcome.log_path = Some(ctx.log_path.clone());
    outcome
}

async fn roll_back(
    config: &RollbackConfig,
    ctx: &StepContext<'_>,
    log: &mut StepLog,
) -> StepOutcome {
    let started = Instant::now();
    let wanted = config.deployment.as_ref().map(|d| d.value.as_str());
    let entries: Vec<_> = ctx
        .deployments
        .entries()
        .into_iter()
        .filter(|e| wanted.is_none_or(|step| e.step_id == step))
        .rev()
        .collect();
    if entries.is_empty() {
        let scope = wanted.map_or_else(|| "this run".to_owned(), |s| format!("step `{s}`"));
        return StepOutcome::passed(format!("nothing to roll back: {scope} deployed nothing"));
    }
    let options = WaitOptions {
        readiness_timeout: Some(
            config
                .readiness_timeout
                .map_or(super::deploy::DEFAULT_READINESS_TIMEOUT, |d| d.0),
        ),
        deadline: ctx.timeout.map(|t| tokio::time::Instant::now() + t),
        cancel: ctx.cancel.child_token(),
    };
    let mut restored = Vec::new();
    let mut failures = Vec::new();
    let mut evidence = Vec::new();
    for entry in entries {
        let label = format!("{}/{}", entry.namespace, entry.name);
        let kind = entry.kind;
        if entry.rolled_back {
            log.line(&format!("{kind} `{label}` was already rolled back"));
            restored.push(kind.display_name(&entry.name));
            continue;
        }
        let cluster = match Cluster::connect(&entry.access, RetryPolicy::default(), ctx.azure).await
        {
            Ok(cluster) => cluster,
            Err(error) => {
                failures.push(error.to_string());
                continue;
            }
        };
        let mut progress = |text: &str| log.line(text);
        match rollback(&cluster, &entry, &options, &mut progress).await {
            Ok(done) => {
                let what = match done.action {
                    RollbackAction::Restored { revision } => format!(
                        "restored the previous template (now revision {})",
                        revision.map_or_else(|| "?".to_owned(), |r| r.to_string())
                    ),
                    RollbackAction::AlreadyRestored { .. } => {
                        "already at the previous template".to_owned()
                    }
                    RollbackAction::Deleted => "deleted (this run created it)".to_owned(),
                    RollbackAction::AlreadyDeleted => {
                        "already deleted (this run created it)".to_owned()
                    }
                };
                log.line(&format!("{kind} `{label}`: {what} in {:.1?}", done.elapsed));
                if let Err(error) =
                    ctx.deployments
                        .mark_rolled_back(kind, &entry.namespace, &entry.name)
                {
                    log.line(&format!("warning: {error}"));
                }
                restored.push(kind.display_name(&entry.name));
            }
            Err(error) => {
                if let crate::cluster::rollback::RollbackErrorKind::Rollout(rollout) = &error.kind
                    && let Some(text) = &rollout.evidence
                {
                    evidence.push(text.clone());
                }
                log.line(&error.to_string());
                failures.push(error.to_string());
            }
        }
    }
    let mut outputs = IndexMap::new();
    outputs.insert("rolled_back".to_owned(), restored.join(","));
    let mut outcome = if failures.is_empty() {
        StepOutcome::passed(format!(
            "rolled back {} in {:.1?}",
            restored.join(", "),
            started.elapsed()
        ))
    } else {
        StepOutcome::failed(failures.join("; "))
    };
    if !evidence.is_empty() {
        outcome.evidence = Some(evidence.join("\n"));
    }
    outcome.outputs = outputs;
    outcome
}
