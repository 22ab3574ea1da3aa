//! Rollout status as a pure function of the Deployment, its ReplicaSets and their Pods.
//!
//! The deployment part follows kubectl's `rollout_status.go` (observedGeneration, the
//! ProgressDeadlineExceeded condition, updated/available counts); the pod part adds what kubectl
//! leaves to its progress deadline: containers stuck in a waiting reason that will not fix
//! itself, repeated OOM kills, and readiness that never comes.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A container killed for memory this many times is not going to make it.
const OOM_KILLS_BEFORE_FAILING: i32 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStatus {
    /// Still going; the text says what it waits for (kubectl's wording).
    Progressing(String),
    Complete,
    Failed(RolloutFailure),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FailureReason {
    CrashLoopBackOff,
    ImagePullBackOff,
    ErrImagePull,
    CreateContainerConfigError,
    InvalidImageName,
    #[serde(rename = "OOMKilled")]
    OomKilled,
    ReadinessNeverReached,
    ProgressDeadlineExceeded,
    /// A Job's pods failed more than its `backoffLimit` allows.
    BackoffLimitExceeded,
    /// A Job ran longer than its `activeDeadlineSeconds`.
    DeadlineExceeded,
    /// A Job failed for another reason (a pod failure policy, say).
    JobFailed,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::CrashLoopBackOff => "CrashLoopBackOff",
            FailureReason::ImagePullBackOff => "ImagePullBackOff",
            FailureReason::ErrImagePull => "ErrImagePull",
            FailureReason::CreateContainerConfigError => "CreateContainerConfigError",
            FailureReason::InvalidImageName => "InvalidImageName",
            FailureReason::OomKilled => "OOMKilled",
            FailureReason::ReadinessNeverReached => "ReadinessNeverReached",
            FailureReason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            FailureReason::BackoffLimitExceeded => "BackoffLimitExceeded",
            FailureReason::DeadlineExceeded => "DeadlineExceeded",
            FailureReason::JobFailed => "JobFailed",
        }
    }

    /// A waiting reason that means the container will not start without a change.
    fn from_waiting(reason: &str) -> Option<Self> {
        Some(match reason {
            "CrashLoopBackOff" => FailureReason::CrashLoopBackOff,
            "ImagePullBackOff" => FailureReason::ImagePullBackOff,
            "ErrImagePull" => FailureReason::ErrImagePull,
            "CreateContainerConfigError" => FailureReason::CreateContainerConfigError,
            "InvalidImageName" => FailureReason::InvalidImageName,
            _ => return None,
        })
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RolloutFailure {
    pub reason: FailureReason,
    pub pod: Option<String>,
    pub container: Option<String>,
    /// What the cluster said (the waiting message, the condition message).
    pub message: String,
}

impl fmt::Display for RolloutFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        match (&self.pod, &self.container) {
            (Some(pod), Some(container)) => write!(f, " in pod `{pod}` container `{container}`")?,
            (Some(pod), None) => write!(f, " in pod `{pod}`")?,
            _ => {}
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// The revision annotation of a Deployment or ReplicaSet.
pub fn revision(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<u64> {
    metadata
        .annotations
        .as_ref()?
        .get(REVISION_ANNOTATION)?
        .parse()
        .ok()
}

/// The ReplicaSet of the deployment's current revision, if the controller has made it.
pub fn current_replica_set<'a>(
    deployment: &Deployment,
    replica_sets: &'a [ReplicaSet],
) -> Option<&'a ReplicaSet> {
    let uid = deployment.metadata.uid.as_deref()?;
    let wanted = revision(&deployment.metadata)?;
    replica_sets.iter().find(|rs| {
        let owned = rs
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|refs| refs.iter().any(|r| r.uid == uid));
        owned && revision(&rs.metadata) == Some(wanted)
    })
}

fn template_hash(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(TEMPLATE_HASH_LABEL)
        .map(String::as_str)
}

/// Where a rollout stands. `readiness_timeout`: how long a running container may stay unready.
pub fn rollout_status(
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    now: Timestamp,
    readiness_timeout: Option<Duration>,
) -> RolloutStatus {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = deployment.status.as_ref() else {
        return RolloutStatus::Progressing(
            "waiting for deployment spec update to be observed".into(),
        );
    };
    if generation > status.observed_generation.unwrap_or(0) {
        return RolloutStatus::Progressing(
            "waiting for deployment spec update to be observed".into(),
        );
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    if let Some(condition) = progressing
        && condition.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return RolloutStatus::Failed(RolloutFailure {
            reason: FailureReason::ProgressDeadlineExceeded,
            pod: None,
            container: None,
            message: condition.message.clone().unwrap_or_default(),
        });
    }

    // Pods of the current revision only: an old revision's crash is not this rollout's failure.
    if let Some(rs) = current_replica_set(deployment, replica_sets)
        && let Some(hash) = template_hash(rs)
    {
        let mut current: Vec<&Pod> = pods
            .iter()
            .filter(|pod| {
                pod.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(TEMPLATE_HASH_LABEL))
                    .is_some_and(|h| h == hash)
                    && pod.metadata.deletion_timestamp.is_none()
            })
            .collect();
        current.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for pod in current {
            if let Some(failure) = pod_failure(pod, now, readiness_timeout) {
                return RolloutStatus::Failed(failure);
            }
        }
    }

    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return RolloutStatus::Progressing(format!(
            "waiting for deployment \"{name}\" rollout to finish: {updated} out of {desired} new replicas have been updated"
        ));
    }
    if replicas > updated {
        return RolloutStatus::Progressing(format!(
            "waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return RolloutStatus::Progressing(format!(
            "waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available"
        ));
    }
    RolloutStatus::Complete
}

/// The first container of the pod that will not start or stay up without a change.
pub(crate) fn pod_failure(
    pod: &Pod,
    now: Timestamp,
    readiness_timeout: Option<Duration>,
) -> Option<RolloutFailure> {
    let status = pod.status.as_ref()?;
    let pod_name = pod.metadata.name.clone();
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        if let Some(reason) = container_failure(container, now, readiness_timeout) {
            return Some(RolloutFailure {
                reason: reason.0,
                pod: pod_name.clone(),
                container: Some(container.name.clone()),
                message: reason.1,
            });
        }
    }
    None
}

/// The deployment's `matchLabels` as a label selector (`app=web,tier=frontend`), for listing
/// its ReplicaSets and pods.
pub fn label_selector(deployment: &Deployment) -> String {
    selector_text(
        deployment
            .spec
            .as_ref()
            .and_then(|spec| spec.selector.match_labels.as_ref()),
    )
}

/// Any workload's `spec.selector.matchLabels` (given as JSON) as a label selector.
pub fn match_labels_selector(object: &serde_json::Value) -> String {
    let labels: Option<std::collections::BTreeMap<String, String>> = object
        .pointer("/spec/selector/matchLabels")
        .and_then(|labels| serde_json::from_value(labels.clone()).ok());
    selector_text(labels.as_ref())
}

fn selector_text(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    labels
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The precision of the API's `startedAt` timestamps.
const STARTED_AT_PRECISION_SECS: f64 = 1.0;

fn container_failure(
    container: &ContainerStatus,
    now: Timestamp,
    readiness_timeout: Option<Duration>,
) -> Option<(FailureReason, String)> {
    let last_terminated = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    let oom_killed = last_terminated.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
    if oom_killed && container.restart_count >= OOM_KILLS_BEFORE_FAILING {
        return Some((
            FailureReason::OomKilled,
            format!(
                "container `{}` was killed for exceeding its memory limit ({} restarts)",
                container.name, container.restart_count
            ),
        ));
    }
    let state = container.state.as_ref()?;
    if let Some(waiting) = &state.waiting
        && let Some(reason) = waiting
            .reason
            .as_deref()
            .and_then(FailureReason::from_waiting)
    {
        // One OOM kill can be a spike; wait for it to repeat before calling it.
        if reason == FailureReason::CrashLoopBackOff && oom_killed {
            return None;
        }
        let mut message = waiting.message.clone().unwrap_or_default();
        if let Some(terminated) = last_terminated {
            message.push_str(&format!(
                " (last exit code {}{})",
                terminated.exit_code,
                terminated
                    .reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default()
            ));
        }
        return Some((reason, message.trim().to_owned()));
    }
    if let (Some(running), Some(timeout), false) =
        (&state.running, readiness_timeout, container.ready)
    {
        let started = running.started_at.as_ref()?.0;
        let running_for = now.duration_since(started).as_secs_f64();
        // `startedAt` has whole-second precision: a container that started at x.9 s reads as
        // x.0 s. Without the extra second a short timeout could fire almost at once.
        if running_for >= timeout.as_secs_f64() + STARTED_AT_PRECISION_SECS {
            return Some((
                FailureReason::ReadinessNeverReached,
                format!(
                    "container `{}` has been running for {:.0}s without becoming ready",
                    container.name, running_for
                ),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "uid": "d-1", "generation": generation,
                         "annotations": {REVISION_ANNOTATION: "2"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {}},
            "status": status,
        }))
        .expect("should succeed")
    }

    fn replica_sets() -> Vec<ReplicaSet> {
        let rs = |hash: &str, revision: &str| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("web-{hash}"), "labels": {TEMPLATE_HASH_LABEL: hash},
                             "annotations": {REVISION_ANNOTATION: revision},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-1"}]},
                "spec": {"selector": {}},
            }))
            .expect("should succeed")
        };
        vec![rs("old", "1"), rs("new", "2")]
    }

    fn pod(name: &str, hash: &str, container: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {TEMPLATE_HASH_LABEL: hash}},
            "status": {"containerStatuses": [container]},
        }))
        .expect("should succeed")
    }

    fn waiting(reason: &str) -> serde_json::Value {
        json!({"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
               "state": {"waiting": {"reason": reason, "message": "why"}}})
    }

    fn complete_status() -> serde_json::Value {
        json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2})
    }

    fn now() -> Timestamp {
        "2026-11-22T08:00:00Z".parse().expect("should succeed")
    }

    #[test]
    fn generation_not_observed_is_progressing() {
        let status = rollout_status(&deployment(4, complete_status()), &[], &[], now(), None);
        assert_eq!(
            status,
            RolloutStatus::Progressing("waiting for deployment spec update to be observed".into())
        );
    }

    #[test]
    fn counts_follow_kubectl() {
        let cases = [
            (
                json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}),
                "1 out of 2 new replicas have been updated",
            ),
            (
                json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
                "1 old replicas are pending termination",
            ),
            (
                json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
                "1 of 2 updated replicas are available",
            ),
        ];
        for (status, expected) in cases {
            match rollout_status(&deployment(3, status), &[], &[], now(), None) {
                RolloutStatus::Progressing(text) => assert!(text.ends_with(expected), "{text}"),
                other => panic!("expected progressing, got {other:?}"),
            }
        }
        assert_eq!(
            rollout_status(&deployment(3, complete_status()), &[], &[], now(), None),
            RolloutStatus::Complete
        );
    }

    #[test]
    fn progress_deadline_exceeded_fails() {
        let mut status = complete_status();
        status["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-new\" has timed out progressing."}]);
        let RolloutStatus::Failed(failure) =
            rollout_status(&deployment(3, status), &[], &[], now(), None)
        else {
            panic!("expected a failure");
        };
        assert_eq!(failure.reason, FailureReason::ProgressDeadlineExceeded);
        assert_eq!(
            failure.to_string(),
            "ProgressDeadlineExceeded: ReplicaSet \"web-new\" has timed out progressing."
        );
    }

    #[test]
    fn every_waiting_reason_fails_the_rollout() {
        for reason in [
            "CrashLoopBackOff",
            "ImagePullBackOff",
            "ErrImagePull",
            "CreateContainerConfigError",
            "InvalidImageName",
        ] {
            let pods = [pod("web-new-a", "new", waiting(reason))];
            let status = rollout_status(
                &deployment(3, complete_status()),
                &replica_sets(),
                &pods,
                now(),
                None,
            );
            let RolloutStatus::Failed(failure) = status else {
                panic!("{reason}: expected a failure, got {status:?}");
            };
            assert_eq!(failure.reason.as_str(), reason);
            assert_eq!(failure.pod.as_deref(), Some("web-new-a"));
            assert_eq!(failure.container.as_deref(), Some("app"));
        }
    }

    #[test]
    fn old_revision_pods_do_not_fail_the_rollout() {
        let pods = [pod("web-old-a", "old", waiting("CrashLoopBackOff"))];
        let status = rollout_status(
            &deployment(3, complete_status()),
            &replica_sets(),
            &pods,
            now(),
            None,
        );
        assert_eq!(status, RolloutStatus::Complete);
    }

    #[test]
    fn a_single_oom_kill_waits_and_a_repeat_fails() {
        let oom = |restarts: i32| {
            json!({"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": restarts,
                   "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                   "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}})
        };
        let once = [pod("p", "new", oom(1))];
        assert!(matches!(
            rollout_status(
                &deployment(3, complete_status()),
                &replica_sets(),
                &once,
                now(),
                None
            ),
            RolloutStatus::Complete
        ));
        let twice = [pod("p", "new", oom(2))];
        let RolloutStatus::Failed(failure) = rollout_status(
            &deployment(3, complete_status()),
            &replica_sets(),
            &twice,
            now(),
            None,
        ) else {
            panic!("expected a failure");
        };
        assert_eq!(failure.reason, FailureReason::OomKilled);
    }

    #[test]
    fn readiness_never_reached_after_the_timeout() {
        let running = json!({"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                             "state": {"running": {"startedAt": "2026-11-22T07:59:00Z"}}});
        let pods = [pod("p", "new", running)];
        let d = deployment(
            3,
            json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 0}),
        );
        assert!(matches!(
            rollout_status(
                &d,
                &replica_sets(),
                &pods,
                now(),
                Some(Duration::from_secs(120))
            ),
            RolloutStatus::Progressing(_)
        ));
        let RolloutStatus::Failed(failure) = rollout_status(
            &d,
            &replica_sets(),
            &pods,
            now(),
            Some(Duration::from_secs(30)),
        ) else {
            panic!("expected a failure");
        };
        assert_eq!(failure.reason, FailureReason::ReadinessNeverReached);
        // Not a whole second past the timeout: `startedAt` may be up to a second early.
        assert!(matches!(
            rollout_status(
                &d,
                &replica_sets(),
                &pods,
                now(),
                Some(Duration::from_millis(59_500))
            ),
            RolloutStatus::Progressing(_)
        ));
        assert!(
            failure.message.contains("running for 60s"),
            "{}",
            failure.message
        );
    }
}
