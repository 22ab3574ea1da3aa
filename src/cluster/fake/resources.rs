//! The resource types the fake API server serves, and the discovery documents describing them.

use serde_json::{Value, json};

/// One resource type of the fake API (`deployments` in `apps/v1`, say).
#[derive(Debug)]
pub(crate) struct ResourceType {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "get",
    "list",
    "patch",
    "update",
    "watch",
    "deletecollection",
];

pub(crate) const RESOURCES: &[ResourceType] = &[
    core("namespaces", "Namespace", false),
    core("pods", "Pod", true),
    core("events", "Event", true),
    core("configmaps", "ConfigMap", true),
    core("secrets", "Secret", true),
    core("services", "Service", true),
    core("serviceaccounts", "ServiceAccount", true),
    apps("deployments", "Deployment"),
    apps("replicasets", "ReplicaSet"),
    apps("statefulsets", "StatefulSet"),
    apps("daemonsets", "DaemonSet"),
    apps("controllerrevisions", "ControllerRevision"),
    ResourceType {
        group: "batch",
        version: "v1",
        plural: "jobs",
        kind: "Job",
        namespaced: true,
    },
    ResourceType {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        kind: "PodDisruptionBudget",
        namespaced: true,
    },
];

const fn core(plural: &'static str, kind: &'static str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: "",
        version: "v1",
        plural,
        kind,
        namespaced,
    }
}

const fn apps(plural: &'static str, kind: &'static str) -> ResourceType {
    ResourceType {
        group: "apps",
        version: "v1",
        plural,
        kind,
        namespaced: true,
    }
}

impl ResourceType {
    pub(crate) fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub(crate) fn by_kind(kind: &str) -> Option<&'static ResourceType> {
        RESOURCES.iter().find(|r| r.kind == kind)
    }

    /// `deployments.apps`, `pods`: how Kubernetes names a resource in messages.
    pub(crate) fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// `GET /api`
pub(crate) fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

/// `GET /apis`: every named group the table serves, in table order.
pub(crate) fn group_list() -> Value {
    let mut groups: Vec<Value> = Vec::new();
    for resource in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if groups.iter().any(|g| g["name"] == resource.group) {
            continue;
        }
        let group_version =
            json!({"groupVersion": resource.api_version(), "version": resource.version});
        groups.push(json!({
            "name": resource.group,
            "versions": [group_version.clone()],
            "preferredVersion": group_version,
        }));
    }
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups,
    })
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`; `None` for a group version we do not serve.
pub(crate) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for resource in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": resource.plural,
            "singularName": resource.kind.to_lowercase(),
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": VERBS,
        }));
        let subresources: &[&str] = match resource.plural {
            "pods" => &["log", "status"],
            "deployments" | "replicasets" | "statefulsets" => &["status", "scale"],
            "daemonsets" | "jobs" => &["status"],
            _ => &[],
        };
        for sub in subresources {
            resources.push(json!({
                "name": format!("{}/{sub}", resource.plural),
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": if *sub == "scale" { "Scale" } else { resource.kind },
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}
