//! A Job's status as a pure function of the Job and its pods: complete when it has the
//! `Complete` condition, failed when it has `Failed` (reason `BackoffLimitExceeded`,
//! `DeadlineExceeded`, ...), as the Job controller reports them
//! (<https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-backoff-failure-policy>).
//! A pod that cannot start (an image that cannot be pulled, a missing secret) fails it at
//! once: the controller would wait for it forever.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::rollout_status::{FailureReason, RolloutFailure, RolloutStatus, pod_failure};

pub fn job_status(job: &Job, pods: &[Pod], now: Timestamp) -> RolloutStatus {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let holds = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if holds("Complete").is_some() {
        return RolloutStatus::Complete;
    }
    if let Some(failed) = holds("Failed") {
        let reason = match failed.reason.as_deref() {
            Some("BackoffLimitExceeded") => FailureReason::BackoffLimitExceeded,
            Some("DeadlineExceeded") => FailureReason::DeadlineExceeded,
            _ => FailureReason::JobFailed,
        };
        return RolloutStatus::Failed(RolloutFailure {
            reason,
            pod: last_failed_pod(pods).and_then(|p| p.metadata.name.clone()),
            container: None,
            message: failed.message.clone().unwrap_or_default(),
        });
    }
    let mut waiting: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
        .collect();
    waiting.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for pod in waiting {
        // Crash loops and OOM kills count against `backoffLimit`; the Job decides about them.
        if let Some(failure) = pod_failure(pod, now, None).filter(|f| {
            !matches!(
                f.reason,
                FailureReason::CrashLoopBackOff | FailureReason::OomKilled
            )
        }) {
            return RolloutStatus::Failed(failure);
        }
    }
    RolloutStatus::Progressing(format!(
        "waiting for job \"{name}\" to complete: {} active, {} succeeded, {} failed",
        status.active.unwrap_or(0),
        status.succeeded.unwrap_or(0),
        status.failed.unwrap_or(0)
    ))
}

/// The pod that failed last: the one whose logs say why the Job failed.
pub fn last_failed_pod(pods: &[Pod]) -> Option<&Pod> {
    pods.iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        .max_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "migrate"},
            "spec": {"template": {}},
            "status": {"active": 1, "failed": 2, "conditions": conditions},
        }))
        .expect("should succeed")
    }

    fn now() -> Timestamp {
        "2026-11-22T08:00:00Z".parse().expect("should succeed")
    }

    #[test]
    fn conditions_decide() {
        assert_eq!(
            job_status(&job(json!([])), &[], now()),
            RolloutStatus::Progressing(
                "waiting for job \"migrate\" to complete: 1 active, 0 succeeded, 2 failed".into()
            )
        );
        assert_eq!(
            job_status(
                &job(json!([{"type": "Complete", "status": "True"}])),
                &[],
                now()
            ),
            RolloutStatus::Complete
        );
        let failed: Pod = serde_json::from_value(json!({
            "metadata": {"name": "migrate-abc"}, "status": {"phase": "Failed"}}))
        .expect("should succeed");
        let RolloutStatus::Failed(failure) = job_status(
            &job(
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"}]),
            ),
            &[failed],
            now(),
        ) else {
            panic!("expected a failure");
        };
        assert_eq!(failure.reason, FailureReason::BackoffLimitExceeded);
        assert_eq!(failure.pod.as_deref(), Some("migrate-abc"));
    }
}
