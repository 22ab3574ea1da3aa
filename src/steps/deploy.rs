//! `deploy`: apply manifests to Kubernetes and wait for the rollout.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::workflow::template::Template;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Manifest files (multi-document YAML, templated), relative to the workflow's directory.
    pub manifests: Vec<Template>,
    #[serde(default)]
    pub namespace: Option<Template>,
    /// Image for every container of the deployed workloads.
    #[serde(default)]
    pub image: Option<Template>,
    /// Image per container name.
    #[serde(default)]
    pub images: IndexMap<String, Template>,
    /// kubeconfig context; default: the current context.
    #[serde(default)]
    pub context: Option<Template>,
}
