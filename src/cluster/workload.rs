//! The workload kinds a deploy watches: Deployments, StatefulSets and DaemonSets roll out (and
//! roll back), Jobs run to completion.

use std::fmt;

use kube::api::{ApiResource, GroupVersionKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

impl WorkloadKind {
    /// The kind a manifest's `apiVersion` group and `kind` name, if it is a workload we watch.
    pub fn of(gvk: &GroupVersionKind) -> Option<Self> {
        match (gvk.group.as_str(), gvk.kind.as_str()) {
            ("apps", "Deployment") => Some(Self::Deployment),
            ("apps", "StatefulSet") => Some(Self::StatefulSet),
            ("apps", "DaemonSet") => Some(Self::DaemonSet),
            ("batch", "Job") => Some(Self::Job),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::Job => "Job",
        }
    }

    /// How kubectl names it in messages: `deployment`, `statefulset`, ...
    pub fn lowercase(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
            Self::DaemonSet => "daemonset",
            Self::Job => "job",
        }
    }

    /// `deployments.apps`, `jobs.batch`: the resource, for error messages.
    pub fn resource_name(self) -> &'static str {
        match self {
            Self::Deployment => "deployments.apps",
            Self::StatefulSet => "statefulsets.apps",
            Self::DaemonSet => "daemonsets.apps",
            Self::Job => "jobs.batch",
        }
    }

    pub fn api_resource(self) -> ApiResource {
        let (group, plural) = match self {
            Self::Deployment => ("apps", "deployments"),
            Self::StatefulSet => ("apps", "statefulsets"),
            Self::DaemonSet => ("apps", "daemonsets"),
            Self::Job => ("batch", "jobs"),
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, "v1", self.as_str()),
            plural,
        )
    }

    /// Whether it has revisions to roll back to (a Job runs once: there is nothing to restore).
    pub fn rolls_out(self) -> bool {
        self != Self::Job
    }

    /// Whether its previous templates are kept as ControllerRevisions (not ReplicaSets).
    pub fn has_controller_revisions(self) -> bool {
        matches!(self, Self::StatefulSet | Self::DaemonSet)
    }

    /// `web` for a Deployment (as before other kinds were watched), `StatefulSet/db` otherwise.
    pub fn display_name(self, name: &str) -> String {
        match self {
            Self::Deployment => name.to_owned(),
            other => format!("{}/{name}", other.as_str()),
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lowercase())
    }
}
