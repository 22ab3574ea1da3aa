//! Waiting for a rollout with watches on the workload (a Deployment, StatefulSet, DaemonSet or
//! Job), a Deployment's ReplicaSets, and its Pods; the status is re-evaluated on every change,
//! so a failing pod ends the wait as soon as the API server reports it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::access::Cluster;
use super::controller_revision;
use super::error::{ClusterError, Operation, is_transient};
use super::evidence;
use super::job_status::job_status;
use super::rollout_status::{RolloutFailure, RolloutStatus, revision, rollout_status};
use super::set_status::{
    daemon_set_current_pods, daemon_set_status, stateful_set_current_pods, stateful_set_status,
};
use super::workload::WorkloadKind;

/// How readiness is re-checked when nothing changes (it fails on elapsed time, not an event).
const READINESS_RECHECK: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct WaitOptions {
    /// How long a running container may stay unready; `None`: leave it to the progress deadline.
    pub readiness_timeout: Option<Duration>,
    /// When to give up (the step's timeout).
    pub deadline: Option<tokio::time::Instant>,
    pub cancel: CancellationToken,
}

/// A finished rollout.
#[derive(Clone, Debug)]
pub struct RolloutDone {
    pub revision: Option<u64>,
    pub elapsed: Duration,
}

#[derive(Debug, Error)]
#[error("{} `{name}` in namespace `{namespace}` {kind}", subject(*.workload))]
pub struct RolloutError {
    pub workload: WorkloadKind,
    pub name: String,
    pub namespace: String,
    pub kind: RolloutErrorKind,
    /// Logs, events and conditions for the fix step (failures and time-outs).
    pub evidence: Option<String>,
}

#[derive(Debug, Error)]
pub enum RolloutErrorKind {
    #[error("failed: {0}")]
    Failed(RolloutFailure),
    #[error("timed out after {after:.1?}: {last}")]
    TimedOut { after: Duration, last: String },
    #[error("was cancelled")]
    Cancelled,
    #[error("could not be followed: {0}")]
    Cluster(ClusterError),
}

/// `rollout of deployment`, `rollout of statefulset`; a Job does not roll out, it runs: `job`.
fn subject(workload: WorkloadKind) -> String {
    match workload {
        WorkloadKind::Job => "job".to_owned(),
        other => format!("rollout of {other}"),
    }
}

impl RolloutError {
    pub fn failure(&self) -> Option<&RolloutFailure> {
        match &self.kind {
            RolloutErrorKind::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

enum Update {
    Workload(watcher::Result<watcher::Event<DynamicObject>>),
    ReplicaSet(watcher::Result<watcher::Event<ReplicaSet>>),
    Pod(watcher::Result<watcher::Event<Pod>>),
}

/// A watched collection: the objects by name, and whether the initial list is complete.
struct Cache<K> {
    objects: BTreeMap<String, K>,
    listing: BTreeMap<String, K>,
    synced: bool,
}

impl<K: kube::Resource + Clone> Cache<K> {
    fn new() -> Self {
        Self {
            objects: BTreeMap::new(),
            listing: BTreeMap::new(),
            synced: false,
        }
    }

    fn apply(&mut self, event: watcher::Event<K>) {
        let key = |o: &K| o.meta().name.clone().unwrap_or_default();
        match event {
            watcher::Event::Apply(o) => {
                self.objects.insert(key(&o), o);
            }
            watcher::Event::Delete(o) => {
                self.objects.remove(&key(&o));
            }
            watcher::Event::Init => self.listing.clear(),
            watcher::Event::InitApply(o) => {
                self.listing.insert(key(&o), o);
            }
            watcher::Event::InitDone => {
                self.objects = std::mem::take(&mut self.listing);
                self.synced = true;
            }
        }
    }

    fn values(&self) -> Vec<K> {
        self.objects.values().cloned().collect()
    }
}

fn watch_error_kube(error: watcher::Error) -> kube::Error {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        watcher::Error::WatchError(status) => kube::Error::Api(status),
        watcher::Error::NoResourceVersion => kube::Error::Api(Box::new(
            kube::core::Status::failure("no resourceVersion in watch result", "BadRequest")
                .with_code(400),
        )),
    }
}

/// Waits until the workload's rollout completes (a Job: until it completes), fails, times out
/// or is cancelled. `progress` receives each new status line (kubectl's wording).
pub async fn wait_for_rollout(
    cluster: &Cluster,
    workload: WorkloadKind,
    namespace: &str,
    name: &str,
    options: &WaitOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<RolloutDone, RolloutError> {
    let started = Instant::now();
    let error = |kind: RolloutErrorKind, evidence: Option<String>| RolloutError {
        workload,
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        kind,
        evidence,
    };
    let client = cluster.client().clone();
    let objects: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &workload.api_resource());
    let get = Operation::new("get", workload.resource_name())
        .namespace(namespace)
        .name(name);
    let object = cluster
        .call(get, || objects.get(name))
        .await
        .map_err(|e| error(RolloutErrorKind::Cluster(e), None))?;
    let selector = super::rollout_status::match_labels_selector(&as_json(&object));

    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let by_selector = watcher::Config::default().labels(&selector);
    let mut streams: Vec<std::pin::Pin<Box<dyn Stream<Item = Update> + Send>>> = vec![
        watcher(objects, by_name).map(Update::Workload).boxed(),
        watcher(
            Api::<Pod>::namespaced(client.clone(), namespace),
            by_selector.clone(),
        )
        .map(Update::Pod)
        .boxed(),
    ];
    let mut rs_cache = Cache::<ReplicaSet>::new();
    if workload == WorkloadKind::Deployment {
        streams.push(
            watcher(
                Api::<ReplicaSet>::namespaced(client, namespace),
                by_selector,
            )
            .map(Update::ReplicaSet)
            .boxed(),
        );
    } else {
        rs_cache.synced = true;
    }
    let watched = match workload {
        WorkloadKind::Deployment => "deployments.apps, replicasets.apps and pods".to_owned(),
        other => format!("{} and pods", other.resource_name()),
    };
    let mut updates = futures::stream::select_all(streams);

    let mut object_cache = Cache::<DynamicObject>::new();
    let mut pod_cache = Cache::<Pod>::new();
    let mut last_status = String::from("waiting for the first status");
    let mut consecutive_errors = 0u32;
    let mut first_error_at = None;
    let retry = cluster.retry_policy();
    let mut recheck = tokio::time::interval(READINESS_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = options.deadline;
    let timed_out = async move {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timed_out);

    loop {
        let update = tokio::select! {
            () = options.cancel.cancelled() => return Err(error(RolloutErrorKind::Cancelled, None)),
            () = &mut timed_out => {
                let evidence = match object_cache.objects.get(name) {
                    Some(current) => {
                        let current = as_json(current);
                        let pods = current_pods(workload, &current, &rs_cache, &pod_cache);
                        Some(evidence::collect(cluster, workload, &current, None, &pods).await)
                    }
                    None => None,
                };
                return Err(error(
                    RolloutErrorKind::TimedOut { after: started.elapsed(), last: last_status },
                    evidence,
                ));
            }
            _ = recheck.tick(), if options.readiness_timeout.is_some() => None,
            update = updates.next() => update,
        };
        if let Some(update) = update {
            let result = match update {
                Update::Workload(r) => r.map(|e| object_cache.apply(e)),
                Update::ReplicaSet(r) => r.map(|e| rs_cache.apply(e)),
                Update::Pod(r) => r.map(|e| pod_cache.apply(e)),
            };
            if let Err(watch_error) = result {
                let kube_error = watch_error_kube(watch_error);
                let operation = Operation::new("watch", watched.clone()).namespace(namespace);
                if !is_transient(&kube_error) {
                    return Err(error(
                        RolloutErrorKind::Cluster(ClusterError::from_kube(operation, kube_error)),
                        None,
                    ));
                }
                consecutive_errors += 1;
                let since = *first_error_at.get_or_insert_with(Instant::now);
                // The watches fail together when the server goes away: bound the outage by
                // time (the retry policy's budget), not by how many streams reported it.
                if since.elapsed() >= retry.budget() {
                    return Err(error(
                        RolloutErrorKind::Cluster(cluster.unreachable(
                            operation,
                            consecutive_errors,
                            since,
                            &kube_error,
                        )),
                        None,
                    ));
                }
                let pause = retry
                    .backoff(consecutive_errors.div_ceil(3))
                    .min(retry.budget().saturating_sub(since.elapsed()));
                tokio::select! {
                    () = options.cancel.cancelled() => return Err(error(RolloutErrorKind::Cancelled, None)),
                    () = tokio::time::sleep(pause) => {}
                }
                continue;
            }
            consecutive_errors = 0;
            first_error_at = None;
        }
        if !(object_cache.synced && rs_cache.synced && pod_cache.synced) {
            continue;
        }
        let Some(current) = object_cache.objects.get(name) else {
            let text = format!("waiting for {workload} \"{name}\" to exist");
            if text != last_status {
                progress(&text);
                last_status = text;
            }
            continue;
        };
        let current = as_json(current);
        let pods = pod_cache.values();
        let status = evaluate(
            workload,
            &current,
            &rs_cache.values(),
            &pods,
            options.readiness_timeout,
        );
        match status {
            RolloutStatus::Complete => {
                return Ok(RolloutDone {
                    revision: revision_number(cluster, workload, &current).await,
                    elapsed: started.elapsed(),
                });
            }
            RolloutStatus::Failed(failure) => {
                let pods = current_pods(workload, &current, &rs_cache, &pod_cache);
                let evidence =
                    evidence::collect(cluster, workload, &current, Some(&failure), &pods).await;
                return Err(error(RolloutErrorKind::Failed(failure), Some(evidence)));
            }
            RolloutStatus::Progressing(text) => {
                if text != last_status {
                    progress(&text);
                    last_status = text;
                }
            }
        }
    }
}

fn as_json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn typed<K: DeserializeOwned>(object: &Value) -> Result<K, String> {
    serde_json::from_value(object.clone()).map_err(|e| e.to_string())
}

/// The workload's status, by its kind's rules.
fn evaluate(
    workload: WorkloadKind,
    object: &Value,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    readiness_timeout: Option<Duration>,
) -> RolloutStatus {
    let now = Timestamp::now();
    let status = match workload {
        WorkloadKind::Deployment => typed::<Deployment>(object)
            .map(|d| rollout_status(&d, replica_sets, pods, now, readiness_timeout)),
        WorkloadKind::StatefulSet => typed::<StatefulSet>(object)
            .map(|s| stateful_set_status(&s, pods, now, readiness_timeout)),
        WorkloadKind::DaemonSet => {
            typed::<DaemonSet>(object).map(|s| daemon_set_status(&s, pods, now, readiness_timeout))
        }
        WorkloadKind::Job => typed::<Job>(object).map(|j| job_status(&j, pods, now)),
    };
    status.unwrap_or_else(|problem| {
        RolloutStatus::Progressing(format!("waiting for a readable {workload}: {problem}"))
    })
}

/// The revision a finished rollout reached: a Deployment's annotation, the number of a
/// StatefulSet's or DaemonSet's current ControllerRevision; none for a Job.
async fn revision_number(cluster: &Cluster, workload: WorkloadKind, object: &Value) -> Option<u64> {
    match workload {
        WorkloadKind::Deployment => revision(&typed::<Deployment>(object).ok()?.metadata),
        WorkloadKind::Job => None,
        sets => {
            let revisions = controller_revision::revisions(cluster, object).await.ok()?;
            controller_revision::current(sets, object, &revisions).map(|r| r.number)
        }
    }
}

/// The pods of the workload's current revision (all its pods when that is not known yet).
fn current_pods(
    workload: WorkloadKind,
    object: &Value,
    replica_sets: &Cache<ReplicaSet>,
    pods: &Cache<Pod>,
) -> Vec<Pod> {
    let all = pods.values();
    let current: Vec<Pod> = match workload {
        WorkloadKind::Deployment => {
            let Ok(deployment) = typed::<Deployment>(object) else {
                return all;
            };
            let sets = replica_sets.values();
            let hash = super::rollout_status::current_replica_set(&deployment, &sets)
                .and_then(|rs| rs.metadata.labels.as_ref())
                .and_then(|l| l.get(super::rollout_status::TEMPLATE_HASH_LABEL))
                .cloned();
            let Some(hash) = hash else {
                return all;
            };
            all.iter()
                .filter(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(super::rollout_status::TEMPLATE_HASH_LABEL))
                        == Some(&hash)
                })
                .cloned()
                .collect()
        }
        WorkloadKind::StatefulSet => typed::<StatefulSet>(object)
            .map(|s| {
                stateful_set_current_pods(&s, &all)
                    .into_iter()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        WorkloadKind::DaemonSet => typed::<DaemonSet>(object)
            .map(|s| {
                daemon_set_current_pods(&s, &all)
                    .into_iter()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        WorkloadKind::Job => return all,
    };
    if current.is_empty() { all } else { current }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::error::ClusterErrorKind;

    #[test]
    fn unreachable_kind_reads_well() {
        let error = RolloutError {
            workload: WorkloadKind::Deployment,
            name: "web".into(),
            namespace: "prod".into(),
            kind: RolloutErrorKind::Cluster(ClusterError::new(
                Operation::new("watch", "pods").namespace("prod"),
                ClusterErrorKind::NotFound("gone".into()),
            )),
            evidence: None,
        };
        assert_eq!(
            error.to_string(),
            "rollout of deployment `web` in namespace `prod` could not be followed: failed to watch pods in namespace `prod`: not found (gone)"
        );
    }
}
