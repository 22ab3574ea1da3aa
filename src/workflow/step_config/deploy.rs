//! What a `deploy` step accepts; run by `steps::deploy`.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::workflow::duration::DurationSpec;
use crate::workflow::template::Template;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Manifest files (multi-document YAML, templated), relative to the workflow's directory.
    #[serde(default)]
    pub manifests: Vec<Template>,
    /// A command whose stdout is more manifests (`helm template …`, `kustomize build …`), run
    /// in the workflow's directory by the platform's shell; it failing fails the step.
    #[serde(default)]
    pub render: Option<Template>,
    /// Namespace for namespaced objects; default: `env.namespace`, else the context's namespace.
    #[serde(default)]
    pub namespace: Option<Template>,
    /// Image for every container of the deployed workloads.
    #[serde(default)]
    pub image: Option<Template>,
    /// Image per container name.
    #[serde(default)]
    pub images: IndexMap<String, Template>,
    /// kubeconfig context; default: `env.context`, else the kubeconfig's current context.
    #[serde(default)]
    pub context: Option<Template>,
    /// kubeconfig file; default: `KUBECONFIG`, `~/.kube/config`, then in-cluster config.
    #[serde(default)]
    pub kubeconfig: Option<Template>,
    /// An AKS cluster, reached with Azure credentials instead of a kubeconfig; default:
    /// `env.aks` when neither `kubeconfig` nor `context` is set.
    // Boxed: most deploy steps have none, and every step kind is as large as the largest.
    #[serde(default)]
    pub aks: Option<Box<AksSettings>>,
    /// Wait for the rollouts to finish (default true).
    #[serde(default = "default_wait")]
    pub wait: bool,
    /// How long a running container may stay unready before the rollout fails (default `2m`).
    #[serde(default)]
    pub readiness_timeout: Option<DurationSpec>,
}

fn default_wait() -> bool {
    true
}

/// `aks:` of a deploy step or an environment: which AKS cluster, found through Azure Resource
/// Manager with the run's Azure sign-in (the service connection in a pipeline).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AksSettings {
    /// The subscription id; default: the service connection's subscription.
    #[serde(default)]
    pub subscription: Option<Template>,
    pub resource_group: Template,
    /// The managed cluster's name.
    pub cluster: Template,
    /// Use the cluster's local admin account (`listClusterAdminCredential`) instead of the
    /// user's credentials (default false).
    #[serde(default)]
    pub admin: bool,
}
