//! The ControllerRevisions of a StatefulSet or DaemonSet: the history `kubectl rollout history`
//! lists and `kubectl rollout undo` restores from
//! (<https://kubernetes.io/docs/tasks/manage-daemon/rollback-daemon-set/>). kubectl finds a
//! workload's revisions by its selector and controller owner reference, and each revision's
//! `data` is the patch that restores its pod template.

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::access::Cluster;
use super::error::{ClusterError, Operation};
use super::workload::WorkloadKind;

/// One revision of a workload's pod template.
#[derive(Clone, Debug, PartialEq)]
pub struct Revision {
    /// `<workload>-<hash>`: what a StatefulSet's `status.updateRevision` and its pods'
    /// `controller-revision-hash` label name.
    pub name: String,
    pub number: u64,
    pub template: Value,
}

impl Revision {
    fn of(revision: &ControllerRevision) -> Option<Self> {
        let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
        // The strategic-merge directive that makes the patch replace the whole template.
        if let Some(fields) = template.as_object_mut() {
            fields.remove("$patch");
        }
        Some(Self {
            name: revision.metadata.name.clone()?,
            number: u64::try_from(revision.revision).ok()?,
            template,
        })
    }
}

/// The revisions a workload controls, oldest first. `object` is the workload as JSON.
pub async fn revisions(cluster: &Cluster, object: &Value) -> Result<Vec<Revision>, ClusterError> {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let namespace = text("/metadata/namespace");
    let uid = text("/metadata/uid");
    let selector = super::rollout_status::match_labels_selector(object);
    let api: Api<ControllerRevision> = Api::namespaced(cluster.client().clone(), namespace);
    let params = ListParams::default().labels(&selector);
    let operation = Operation::new("list", "controllerrevisions.apps").namespace(namespace);
    let list = cluster.call(operation, || api.list(&params)).await?;
    let mut owned: Vec<Revision> = list
        .items
        .iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .filter_map(Revision::of)
        .collect();
    owned.sort_by_key(|r| r.number);
    Ok(owned)
}

/// The revision of the workload's current template: a StatefulSet's `status.updateRevision`,
/// a DaemonSet's newest revision.
pub fn current<'a>(
    kind: WorkloadKind,
    object: &Value,
    revisions: &'a [Revision],
) -> Option<&'a Revision> {
    match kind {
        WorkloadKind::StatefulSet => {
            let update = object.pointer("/status/updateRevision")?.as_str()?;
            revisions.iter().find(|r| r.name == update)
        }
        _ => revisions.last(),
    }
}
