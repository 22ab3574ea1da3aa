//! Rollback: restore, for a deployment this run changed, the pod template that was live before
//! the run, like `kubectl rollout undo` does (the ReplicaSet of that revision, its template
//! without `pod-template-hash`, written back with a JSON patch), then wait for that rollout.
//!
//! A deployment the run created is deleted: before the run there was nothing, and leaving a
//! broken new workload running is worse than removing it. Rolling back twice is harmless: the
//! second time finds the template already restored (or the deployment already gone).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use thiserror::Error;

use super::access::Cluster;
use super::error::{ClusterError, Operation};
use super::ledger::{LedgerEntry, PriorRevision};
use super::rollout::{RolloutError, WaitOptions, wait_for_rollout};
use super::rollout_status::{TEMPLATE_HASH_LABEL, revision};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackAction {
    /// The previous template was written back and rolled out; the new revision number.
    Restored { revision: Option<u64> },
    /// The deployment already runs the previous template.
    AlreadyRestored { revision: Option<u64> },
    /// The run created the deployment; it was deleted.
    Deleted,
    /// The run created the deployment and it is already gone.
    AlreadyDeleted,
}

#[derive(Clone, Debug)]
pub struct RollbackOutcome {
    pub action: RollbackAction,
    pub elapsed: Duration,
}

#[derive(Debug, Error)]
#[error("failed to roll back deployment `{name}` in namespace `{namespace}`: {kind}")]
pub struct RollbackError {
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
    let fail = |kind| RollbackError {
        namespace: entry.namespace.clone(),
        name: entry.name.clone(),
        kind,
    };
    let namespace = entry.namespace.as_str();
    let name = entry.name.as_str();
    let deployments: Api<Deployment> = Api::namespaced(cluster.client().clone(), namespace);
    let operation = |verb| {
        Operation::new(verb, "deployments.apps")
            .namespace(namespace)
            .name(name)
    };
    let current = cluster
        .call(operation("get"), || deployments.get_opt(name))
        .await
        .map_err(|e| fail(RollbackErrorKind::Cluster(e)))?;

    let Some(prior) = &entry.before else {
        let action = match current {
            None => RollbackAction::AlreadyDeleted,
            Some(_) => {
                progress(&format!(
                    "deleting deployment \"{name}\": it did not exist before this run"
                ));
                let params = DeleteParams::background();
                let deleted = cluster
                    .call(operation("delete"), || deployments.delete(name, &params))
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

    let target = target_template(cluster, &current, prior)
        .await
        .map_err(|e| fail(RollbackErrorKind::Cluster(e)))?;
    let live =
        serde_json::to_value(current.spec.as_ref().map(|s| &s.template)).unwrap_or(Value::Null);
    let already = same_template(&live, &target);
    if !already {
        progress(&format!(
            "restoring deployment \"{name}\" to the template of revision {}",
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
            .call(operation("patch"), || {
                deployments.patch(name, &params, &patch)
            })
            .await
            .map_err(|e| fail(RollbackErrorKind::Cluster(e)))?;
    }
    let done = wait_for_rollout(cluster, namespace, name, wait, progress)
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
