//! Server-side apply of manifests under our own field manager, with kinds resolved through
//! discovery first, so an unknown kind or a namespace mismatch stops the deploy before anything
//! is applied.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{self, Scope};
use thiserror::Error;

use super::access::Cluster;
use super::error::{ClusterError, ClusterErrorKind, Operation};
use super::manifest::Manifest;

/// Our field manager: what `kubectl get -o yaml --show-managed-fields` shows as the owner.
pub const FIELD_MANAGER: &str = "agent-orch";

/// A manifest whose kind the cluster serves, with the namespace it goes to.
#[derive(Clone, Debug)]
pub struct ResolvedManifest {
    pub manifest: Manifest,
    pub resource: ApiResource,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
}

impl ResolvedManifest {
    fn qualified_resource(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.plural.clone()
        } else {
            format!("{}.{}", self.resource.plural, self.resource.group)
        }
    }

    fn operation(&self, verb: &'static str) -> Operation {
        let mut operation =
            Operation::new(verb, self.qualified_resource()).name(self.manifest.name());
        if let Some(namespace) = &self.namespace {
            operation = operation.namespace(namespace);
        }
        operation
    }
}

/// A manifest that could not be resolved or applied, and what was applied before it.
#[derive(Debug, Error)]
#[error("{location}: {source}{}", applied_note(.applied))]
pub struct ApplyError {
    /// `file:line` of the manifest document.
    pub location: String,
    /// `Kind/name` of every object applied before the failure.
    pub applied: Vec<String>,
    #[source]
    pub source: ClusterError,
}

fn applied_note(applied: &[String]) -> String {
    if applied.is_empty() {
        "; nothing was applied".to_owned()
    } else {
        format!("; applied before the failure: {}", applied.join(", "))
    }
}

/// Looks every manifest's kind up in discovery and settles its namespace.
pub async fn resolve(
    cluster: &Cluster,
    manifests: Vec<Manifest>,
    namespace: &str,
) -> Result<Vec<ResolvedManifest>, ApplyError> {
    let mut cache: HashMap<(String, String, String), (ApiResource, Scope)> = HashMap::new();
    let mut resolved = Vec::new();
    for mut manifest in manifests {
        let gvk = &manifest.gvk;
        let key = (gvk.group.clone(), gvk.version.clone(), gvk.kind.clone());
        let fail = |source: ClusterError, manifest: &Manifest| ApplyError {
            location: manifest.location(),
            applied: Vec::new(),
            source,
        };
        let (resource, scope) = match cache.get(&key) {
            Some(found) => found.clone(),
            None => {
                let found = discover(cluster, gvk)
                    .await
                    .map_err(|e| fail(e, &manifest))?;
                cache.insert(key, found.clone());
                found
            }
        };
        let target_namespace = match scope {
            Scope::Cluster => None,
            Scope::Namespaced => {
                match manifest.object.metadata.namespace.as_deref() {
                    Some(own) if own != namespace => {
                        return Err(fail(
                            ClusterError::new(
                                Operation::new("apply", manifest.display_name()),
                                ClusterErrorKind::Config(format!(
                                    "the manifest's namespace `{own}` does not match the deploy namespace `{namespace}`"
                                )),
                            ),
                            &manifest,
                        ));
                    }
                    _ => {}
                }
                manifest.object.metadata.namespace = Some(namespace.to_owned());
                Some(namespace.to_owned())
            }
        };
        resolved.push(ResolvedManifest {
            manifest,
            resource,
            namespace: target_namespace,
        });
    }
    Ok(resolved)
}

async fn discover(
    cluster: &Cluster,
    gvk: &GroupVersionKind,
) -> Result<(ApiResource, Scope), ClusterError> {
    let api_version = gvk.api_version();
    let operation = Operation::new("discover", format!("kind {} in {api_version}", gvk.kind));
    let unknown = || ClusterErrorKind::UnknownKind {
        kind: gvk.kind.clone(),
        api_version: api_version.clone(),
    };
    let found = cluster
        .call(operation.clone(), || async {
            match discovery::pinned_kind(cluster.client(), gvk).await {
                Ok(found) => Ok(Some(found)),
                // A served group version without the kind.
                Err(kube::Error::Discovery(_)) => Ok(None),
                Err(other) => Err(other),
            }
        })
        .await;
    match found {
        Ok(Some((resource, capabilities))) => Ok((resource, capabilities.scope)),
        Ok(None) => Err(ClusterError::new(operation, unknown())),
        // An unserved group version is a 404.
        Err(error) if error.is_not_found() => Err(ClusterError::new(operation, unknown())),
        Err(other) => Err(other),
    }
}

/// What a Deployment looked like before the apply: `None` when it did not exist.
pub async fn current_deployment(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Option<Deployment>, ClusterError> {
    let api: Api<Deployment> = Api::namespaced(cluster.client().clone(), namespace);
    let operation = Operation::new("get", "deployments.apps")
        .namespace(namespace)
        .name(name);
    cluster.call(operation, || api.get_opt(name)).await
}

/// Server-side applies one manifest (forcing conflicts: we own what we deploy).
pub async fn apply(
    cluster: &Cluster,
    item: &ResolvedManifest,
) -> Result<DynamicObject, ClusterError> {
    let api: Api<DynamicObject> = match &item.namespace {
        Some(namespace) => {
            Api::namespaced_with(cluster.client().clone(), namespace, &item.resource)
        }
        None => Api::all_with(cluster.client().clone(), &item.resource),
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = item.manifest.name();
    let patch = Patch::Apply(&item.manifest.object);
    cluster
        .call(item.operation("patch"), || api.patch(name, &params, &patch))
        .await
}

/// Applies manifests in order; the error lists what was applied before the failure.
pub async fn apply_all(
    cluster: &Cluster,
    items: &[ResolvedManifest],
    on_applied: &mut (dyn FnMut(&ResolvedManifest) + Send),
) -> Result<(), ApplyError> {
    let mut applied = Vec::new();
    for item in items {
        apply(cluster, item).await.map_err(|source| ApplyError {
            location: item.manifest.location(),
            applied: applied.clone(),
            source,
        })?;
        applied.push(item.manifest.display_name());
        on_applied(item);
    }
    Ok(())
}
