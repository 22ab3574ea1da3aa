//! Rollback: restore, for a workload this run changed, the pod template that was live before
//! the run, like `kubectl rollout undo` does, then wait for that rollout. A Deployment's comes
//! from the ReplicaSet of that revision (its template without `pod-template-hash`); a
//! StatefulSet's or DaemonSet's from the ControllerRevision of that revision (its `data`, the
//! patch that restores the template:
//! <https://kubernetes.io/docs/tasks/manage-daemon/rollback-daemon-set/>). Either is written
//! back with a JSON patch. A StatefulSet then gets its broken pods deleted: it waits forever
//! for a pod of the bad template to become ready, even once the template is reverted, and the
//! documented remedy is to delete those pods
//! (<https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#forced-rollback>).
//!
//! A workload the run created is deleted: before the run there was nothing, and leaving a
//! broken new workload running is worse than removing it. Rolling back twice is harmless: the
//! second time finds the template already restored (or the workload already gone).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use thiserror::Error;

use super::access::Cluster;
use super::controller_revision;
use super::error::{ClusterError, Operation};
use super::ledger::{LedgerEntry, PriorRevision};
use super::rollout::{RolloutError, WaitOptions, wait_for_rollout};
use super::rollout_status::{TEMPLATE_HASH_LABEL, revision};
use super::set_status::REVISION_HASH_LABEL;
use super::workload::WorkloadKind;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackAction {
    /// The previous template was written back and rolled out; the new revision number.
    Restored { revision: Option<u64> },
    /// The workload already runs the previous template.
    AlreadyRestored { revision: Option<u64> },
    /// The run created the workload; it was deleted.
    Deleted,
    /// The run created the workload and it is already gone.
    AlreadyDeleted,
}

#[derive(Clone, Debug)]
pub struct RollbackOutcome {
    pub action: RollbackAction,
    pub elapsed: Duration,
}

#[derive(Debug, Error)]
#[error("failed to roll back {workload} `{name}` in namespace `{namespace}`: {kind}")]
pub struct RollbackError {
    pub workload: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub kind: RollbackErrorKind,
}

#[derive(Debug, Error)]
pub enum RollbackErrorKind {
    #[error("{0}")]
    Cluster(ClusterError),
    #[error("{0}")]
    Rollout(Box<RolloutError>),
    #[error(
        "it was deleted since the deploy, so there is nothing to restore the previous revision into"
    )]
    Gone,
}

/// Rolls one ledger entry back and waits for the result.
pub async fn rollback(
    cluster: &Cluster,
    entry: &LedgerEntry,
    wait: &WaitOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<RollbackOutcome, RollbackError> {
    let started = Instant::now();
    let workload = entry.kind;
    let fail = |kind| RollbackError {
        workload,
        namespace: entry.namespace.clone(),
        name: entry.name.clone(),
        kind,
    };
    let namespace = entry.namespace.as_str();
    let name = entry.name.as_str();
    let objects: Api<DynamicObject> = Api::namespaced_with(
        cluster.client().clone(),
        namespace,
        &workload.api_resource(),
    );
    let operation = |verb| {
        Operation::new(verb, workload.resource_name())
            .namespace(namespace)
            .name(name)
    };
    let current = cluster
        .call(operation("get"), || objects.get_opt(name))
        .await
        .map_err(|e| fail(RollbackErrorKind::Cluster(e)))?;

    let Some(prior) = &entry.before else {
        let action = match current {
            None => RollbackAction::AlreadyDeleted,
            Some(_) => {
                progress(&format!(
                    "deleting {workload} \"{name}\": it did not exist before this run"
                ));
                let params = DeleteParams::background();
                let deleted = cluster
                    .call(operation("delete"), || objects.delete(name, &params))
                    .await;
                match deleted {
                    Ok(_) => RollbackAction::Deleted,
                    Err(error) if error.is_not_found() => RollbackAction::AlreadyDeleted,
                    Err(error) => return Err(fail(RollbackErrorKind::Cluster(error))),
                }
            }
        };
        return Ok(RollbackOutcome {
            action,
            elapsed: started.elapsed(),
        });
    };
    let Some(current) = current else {
        return Err(fail(RollbackErrorKind::Gone));
    };
    let current = serde_json::to_value(&current).unwrap_or(Value::Null);

    let target = match workload {
        WorkloadKind::Deployment => {
            let deployment: Option<Deployment> = serde_json::from_value(current.clone()).ok();
            match deployment {
                Some(deployment) => target_template(cluster, &deployment, prior).await,
                None => Ok(prior.template.clone()),
            }
        }
        _ => revision_template(cluster, &current, prior).await,
    }
    .map_err(|e| fail(RollbackErrorKind::Cluster(e)))?;
    let live = current
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let already = same_template(&live, &target);
    if !already {
        progress(&format!(
            "restoring {workload} \"{name}\" to the template of revision {}",
            prior
                .revision
                .map_or_else(|| "before this run".to_owned(), |r| r.to_string())
        ));
        // kubectl's rollbacker writes the template back with a JSON patch, as here.
        let operations = json!([{"op": "replace", "path": "/spec/template", "value": target}]);
        let patch = Patch::Json::<()>(match serde_json::from_value(operations) {
            Ok(patch) => patch,
            Err(err) => {
                return Err(fail(RollbackErrorKind::Cluster(ClusterError::new(
                    operation("patch"),
                    super::error::ClusterErrorKind::Client(format!("invalid json patch: {err}")),
                ))));
            }
        });
        let params = PatchParams::default();
        cluster
            .call(operation("patch"), || objects.patch(name, &params, &patch))
            .await
            .map_err(|e| fail(RollbackErrorKind::Cluster(e)))?;
    }
    if workload == WorkloadKind::StatefulSet {
        delete_broken_pods(cluster, &objects, namespace, name, wait, progress)
            .await
            .map_err(|e| fail(RollbackErrorKind::Cluster(e)))?;
    }
    let done = wait_for_rollout(cluster, workload, namespace, name, wait, progress)
        .await
        .map_err(|e| fail(RollbackErrorKind::Rollout(Box::new(e))))?;
    let action = if already {
        RollbackAction::AlreadyRestored {
            revision: done.revision,
        }
    } else {
        RollbackAction::Restored {
            revision: done.revision,
        }
    };
    Ok(RollbackOutcome {
        action,
        elapsed: started.elapsed(),
    })
}

/// How often a StatefulSet is read while waiting for its controller to see the restored template.
const OBSERVE_POLL: Duration = Duration::from_millis(100);

/// The forced rollback of a StatefulSet: once its controller has seen the restored template
/// (`status.updateRevision` names it), every pod of another revision that is not ready is
/// deleted, to be recreated from the restored template.
async fn delete_broken_pods(
    cluster: &Cluster,
    sets: &Api<DynamicObject>,
    namespace: &str,
    name: &str,
    wait: &WaitOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), ClusterError> {
    let get = || {
        Operation::new("get", WorkloadKind::StatefulSet.resource_name())
            .namespace(namespace)
            .name(name)
    };
    let limit = tokio::time::Instant::now() + Duration::from_secs(30);
    let give_up = wait.deadline.map_or(limit, |d| d.min(limit));
    let set = loop {
        let set = cluster.call(get(), || sets.get(name)).await?;
        let set = serde_json::to_value(&set).unwrap_or(Value::Null);
        let generation = set.pointer("/metadata/generation").and_then(Value::as_i64);
        let observed = set
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64);
        if observed >= generation || tokio::time::Instant::now() >= give_up {
            break set;
        }
        tokio::select! {
            () = wait.cancel.cancelled() => return Ok(()),
            () = tokio::time::sleep(OBSERVE_POLL) => {}
        }
    };
    let Some(update) = set
        .pointer("/status/updateRevision")
        .and_then(Value::as_str)
    else {
        return Ok(());
    };
    let pods: Api<Pod> = Api::namespaced(cluster.client().clone(), namespace);
    let selector = super::rollout_status::match_labels_selector(&set);
    let params = ListParams::default().labels(&selector);
    let operation = Operation::new("list", "pods").namespace(namespace);
    let list = cluster.call(operation, || pods.list(&params)).await?;
    for pod in list.items {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let revision = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_HASH_LABEL))
            .map(String::as_str);
        let ready = pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if revision == Some(update) || ready {
            continue;
        }
        progress(&format!(
            "deleting pod \"{pod_name}\" of revision {}: a StatefulSet does not replace a broken pod by itself",
            revision.unwrap_or("?")
        ));
        let operation = Operation::new("delete", "pods")
            .namespace(namespace)
            .name(&pod_name);
        let params = DeleteParams::default();
        match cluster
            .call(operation, || pods.delete(&pod_name, &params))
            .await
        {
            Ok(_) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The template to restore for a StatefulSet or DaemonSet: from the ControllerRevision of the
/// prior revision if it still exists (what kubectl uses), else the one recorded before the
/// deploy.
async fn revision_template(
    cluster: &Cluster,
    object: &Value,
    prior: &PriorRevision,
) -> Result<Value, ClusterError> {
    let revisions = controller_revision::revisions(cluster, object).await?;
    let found = revisions.iter().find(|r| match &prior.template_hash {
        Some(name) => &r.name == name,
        None => Some(r.number) == prior.revision,
    });
    Ok(found.map_or_else(|| prior.template.clone(), |r| r.template.clone()))
}

/// The template to restore: from the ReplicaSet of the prior revision if it still exists
/// (what kubectl uses), else the template recorded before the deploy.
async fn target_template(
    cluster: &Cluster,
    deployment: &Deployment,
    prior: &PriorRevision,
) -> Result<Value, ClusterError> {
    let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(cluster.client().clone(), &namespace);
    let selector = super::rollout_status::label_selector(deployment);
    let params = ListParams::default().labels(&selector);
    let operation = Operation::new("list", "replicasets.apps").namespace(&namespace);
    let sets = cluster.call(operation, || api.list(&params)).await?;
    let owned = sets.items.into_iter().filter(|rs| {
        rs.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == uid)
    });
    let mut by_hash = None;
    let mut by_revision = None;
    for rs in owned {
        let hash = rs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(TEMPLATE_HASH_LABEL))
            .cloned();
        if prior.template_hash.is_some() && hash == prior.template_hash {
            by_hash = Some(rs);
        } else if prior.template_hash.is_none()
            && prior.revision.is_some()
            && revision(&rs.metadata) == prior.revision
        {
            by_revision = Some(rs);
        }
    }
    let template = by_hash
        .or(by_revision)
        .and_then(|rs| rs.spec.and_then(|s| s.template))
        .and_then(|t| serde_json::to_value(t).ok());
    let mut template = template.unwrap_or_else(|| prior.template.clone());
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(TEMPLATE_HASH_LABEL);
    }
    Ok(template)
}

/// Templates compare equal as JSON, ignoring the hash label and absent-versus-empty fields.
fn same_template(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| {
                    k.as_str() != TEMPLATE_HASH_LABEL
                        && !v.is_null()
                        && v.as_object().is_none_or(|o| !o.is_empty())
                        && v.as_array().is_none_or(|a| !a.is_empty())
                })
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compare_without_hash_and_empty_fields() {
        let a = json!({"metadata": {"labels": {"app": "web", TEMPLATE_HASH_LABEL: "abc"}, "annotations": {}},
                       "spec": {"containers": [{"name": "web", "image": "web:1", "env": null}]}});
        let b = json!({"metadata": {"labels": {"app": "web"}},
                       "spec": {"containers": [{"name": "web", "image": "web:1"}]}});
        assert!(same_template(&a, &b));
        let c = json!({"metadata": {"labels": {"app": "web"}},
                       "spec": {"containers": [{"name": "web", "image": "web:2"}]}});
        assert!(!same_template(&a, &c));
    }
}
