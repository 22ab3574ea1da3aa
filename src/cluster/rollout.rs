//! Waiting for a rollout with watches on the Deployment, its ReplicaSets and its Pods; the
//! status is re-evaluated on every change, so a failing pod ends the wait as soon as the API
//! server reports it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::watcher;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::access::Cluster;
use super::error::{ClusterError, Operation, is_transient};
use super::evidence;
use super::rollout_status::{RolloutFailure, RolloutStatus, revision, rollout_status};

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
#[error("rollout of deployment `{deployment}` in namespace `{namespace}` {kind}")]
pub struct RolloutError {
    pub deployment: String,
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

impl RolloutError {
    pub fn failure(&self) -> Option<&RolloutFailure> {
        match &self.kind {
            RolloutErrorKind::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

enum Update {
    Deployment(watcher::Result<watcher::Event<Deployment>>),
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

/// Waits until the deployment's rollout completes, fails, times out or is cancelled.
/// `progress` receives each new status line (kubectl's wording).
pub async fn wait_for_rollout(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    options: &WaitOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<RolloutDone, RolloutError> {
    let started = Instant::now();
    let error = |kind: RolloutErrorKind, evidence: Option<String>| RolloutError {
        deployment: name.to_owned(),
        namespace: namespace.to_owned(),
        kind,
        evidence,
    };
    let client = cluster.client().clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let get = Operation::new("get", "deployments.apps")
        .namespace(namespace)
        .name(name);
    let deployment = cluster
        .call(get, || deployments.get(name))
        .await
        .map_err(|e| error(RolloutErrorKind::Cluster(e), None))?;
    let selector = super::rollout_status::label_selector(&deployment);

    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let by_selector = watcher::Config::default().labels(&selector);
    let streams: Vec<std::pin::Pin<Box<dyn Stream<Item = Update> + Send>>> = vec![
        watcher(deployments, by_name)
            .map(Update::Deployment)
            .boxed(),
        watcher(
            Api::<ReplicaSet>::namespaced(client.clone(), namespace),
            by_selector.clone(),
        )
        .map(Update::ReplicaSet)
        .boxed(),
        watcher(Api::<Pod>::namespaced(client, namespace), by_selector)
            .map(Update::Pod)
            .boxed(),
    ];
    let mut updates = futures::stream::select_all(streams);

    let mut deployment_cache = Cache::<Deployment>::new();
    let mut rs_cache = Cache::<ReplicaSet>::new();
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
                let current = current_pods(&deployment_cache, &rs_cache, &pod_cache);
                let evidence = match deployment_cache.objects.get(name) {
                    Some(d) => Some(evidence::collect(cluster, d, None, &current).await),
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
                Update::Deployment(r) => r.map(|e| deployment_cache.apply(e)),
                Update::ReplicaSet(r) => r.map(|e| rs_cache.apply(e)),
                Update::Pod(r) => r.map(|e| pod_cache.apply(e)),
            };
            if let Err(watch_error) = result {
                let kube_error = watch_error_kube(watch_error);
                let operation =
                    Operation::new("watch", "deployments.apps, replicasets.apps and pods")
                        .namespace(namespace);
                if !is_transient(&kube_error) {
                    return Err(error(
                        RolloutErrorKind::Cluster(ClusterError::from_kube(operation, kube_error)),
                        None,
                    ));
                }
                consecutive_errors += 1;
                let since = *first_error_at.get_or_insert_with(Instant::now);
                // The three watches fail together when the server goes away: bound the outage by
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
        if !(deployment_cache.synced && rs_cache.synced && pod_cache.synced) {
            continue;
        }
        let Some(current) = deployment_cache.objects.get(name) else {
            let text = format!("waiting for deployment \"{name}\" to exist");
            if text != last_status {
                progress(&text);
                last_status = text;
            }
            continue;
        };
        let replica_sets = rs_cache.values();
        let pods = pod_cache.values();
        match rollout_status(
            current,
            &replica_sets,
            &pods,
            Timestamp::now(),
            options.readiness_timeout,
        ) {
            RolloutStatus::Complete => {
                return Ok(RolloutDone {
                    revision: revision(&current.metadata),
                    elapsed: started.elapsed(),
                });
            }
            RolloutStatus::Failed(failure) => {
                let current_pods = current_pods(&deployment_cache, &rs_cache, &pod_cache);
                let evidence =
                    evidence::collect(cluster, current, Some(&failure), &current_pods).await;
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

/// The pods of the deployment's current revision (all its pods when that is not known yet).
fn current_pods(
    deployments: &Cache<Deployment>,
    replica_sets: &Cache<ReplicaSet>,
    pods: &Cache<Pod>,
) -> Vec<Pod> {
    let all = pods.values();
    let Some(deployment) = deployments.objects.values().next() else {
        return all;
    };
    let sets = replica_sets.values();
    let hash = super::rollout_status::current_replica_set(deployment, &sets)
        .and_then(|rs| rs.metadata.labels.as_ref())
        .and_then(|l| l.get(super::rollout_status::TEMPLATE_HASH_LABEL))
        .cloned();
    match hash {
        Some(hash) => all
            .into_iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(super::rollout_status::TEMPLATE_HASH_LABEL))
                    == Some(&hash)
            })
            .collect(),
        None => all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::error::ClusterErrorKind;

    #[test]
    fn unreachable_kind_reads_well() {
        let error = RolloutError {
            deployment: "web".into(),
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
