//! What a `pull_request` step accepts; run by `steps::pull_request`.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::workflow::template::Template;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequestConfig {
    /// Where the pull request is opened; `git` only pushes the branch.
    pub provider: Provider,
    /// The branch to push (default `agent-orch/fix-<build id>` in a pipeline, else
    /// `agent-orch/fix-<run id>`). A rerun with the same branch updates its pull request.
    #[serde(default)]
    pub branch: Option<Template>,
    /// The branch to merge into (default: the branch being built, else the checkout's).
    #[serde(default)]
    pub target: Option<Template>,
    /// Default: `agent-orch: fix <the failure fixed>`.
    #[serde(default)]
    pub title: Option<Template>,
    /// Open the pull request as a draft.
    #[serde(default)]
    pub draft: bool,
    /// The token, if not the environment's (`SYSTEM_ACCESSTOKEN` for Azure Repos,
    /// `GITHUB_TOKEN` for GitHub): `{{ secrets.github_token }}`.
    #[serde(default)]
    pub token: Option<Template>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Azure Repos, from inside an Azure Pipelines job (`System.AccessToken`).
    AzureRepos,
    /// GitHub or GitHub Enterprise (`GITHUB_API_URL`).
    Github,
    /// Push the branch only.
    Git,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::AzureRepos => "Azure Repos",
            Provider::Github => "GitHub",
            Provider::Git => "git",
        })
    }
}
