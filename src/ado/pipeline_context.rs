//! [`PipelineContext`]: the agent's predefined variables that workflows read as `ado.*`.
//!
//! Outside a pipeline every field is unset and left out of the template context, so
//! `{{ ado.build_id | default('local') }}` renders `local` on a laptop, while a typo such as
//! `ado.buildid` is still an error under strict undefined behaviour.

use std::path::PathBuf;

use serde::Serialize;

use crate::core::agent_env::AgentEnv;

/// The `ado` template context. Field names are the template names; each comes from one
/// predefined variable (`Build.BuildId` arrives as `BUILD_BUILDID`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PipelineContext {
    /// `TF_BUILD=True`: the task runs inside a pipeline job. Always present.
    pub in_pipeline: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_number: Option<String>,
    /// Why the run started: `IndividualCI`, `PullRequest`, `Manual`, `Schedule`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_reason: Option<String>,
    /// `refs/heads/main`, `refs/pull/42/merge`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch: Option<String>,
    /// The last path segment of the branch: `main`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch_name: Option<String>,
    /// The commit being built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_uri: Option<String>,
    /// The pipeline's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_attempt: Option<String>,
    /// The deployment job's environment (`environment:` of a `deployment` job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_os: Option<String>,
    /// `Agent.TempDirectory`: cleaned after every job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp_directory: Option<PathBuf>,
    /// `Build.SourcesDirectory`: where the repository is checked out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources_directory: Option<PathBuf>,
    /// `Build.ArtifactStagingDirectory`: the default artifacts folder inside a pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_staging_directory: Option<PathBuf>,
}

impl PipelineContext {
    pub fn read(env: &AgentEnv) -> Self {
        let var = |name: &str| env.var(name).map(str::to_owned);
        let path = |name: &str| env.var(name).map(PathBuf::from);
        Self {
            in_pipeline: env.in_pipeline(),
            build_id: var("BUILD_BUILDID"),
            build_number: var("BUILD_BUILDNUMBER"),
            build_reason: var("BUILD_REASON"),
            source_branch: var("BUILD_SOURCEBRANCH"),
            source_branch_name: var("BUILD_SOURCEBRANCHNAME"),
            source_version: var("BUILD_SOURCEVERSION"),
            repository: var("BUILD_REPOSITORY_NAME"),
            repository_uri: var("BUILD_REPOSITORY_URI"),
            pipeline: var("BUILD_DEFINITIONNAME"),
            pipeline_id: var("SYSTEM_DEFINITIONID"),
            project: var("SYSTEM_TEAMPROJECT"),
            collection_uri: var("SYSTEM_COLLECTIONURI")
                .or_else(|| var("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI")),
            stage: var("SYSTEM_STAGENAME"),
            job: var("SYSTEM_JOBNAME"),
            job_attempt: var("SYSTEM_JOBATTEMPT"),
            deployment_environment: var("ENVIRONMENT_NAME"),
            pull_request_id: var("SYSTEM_PULLREQUEST_PULLREQUESTID"),
            requested_for: var("BUILD_REQUESTEDFOR"),
            agent_os: var("AGENT_OS"),
            temp_directory: path("AGENT_TEMPDIRECTORY"),
            sources_directory: path("BUILD_SOURCESDIRECTORY"),
            artifact_staging_directory: path("BUILD_ARTIFACTSTAGINGDIRECTORY"),
        }
    }

    /// The pipeline run's results page, `{collection}{project}/_build/results?buildId={id}`,
    /// when the agent said all three.
    pub fn run_url(&self) -> Option<String> {
        let collection = self.collection_uri.as_deref()?;
        let project = self.project.as_deref()?;
        let build_id = self.build_id.as_deref()?;
        let separator = if collection.ends_with('/') { "" } else { "/" };
        Some(format!(
            "{collection}{separator}{}/_build/results?buildId={}",
            percent_encode(project),
            percent_encode(build_id)
        ))
    }

    /// The value for the template context's `ado` key: an object holding only the set fields.
    pub fn to_template_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a project name may hold
/// spaces).
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::workflow::span::Spanned;
    use crate::workflow::template::{Renderer, Template};

    fn pipeline_env() -> AgentEnv {
        AgentEnv::from_vars([
            ("TF_BUILD", "True"),
            ("BUILD_BUILDID", "4711"),
            ("BUILD_BUILDNUMBER", "20261122.3"),
            ("BUILD_REASON", "IndividualCI"),
            ("BUILD_SOURCEBRANCH", "refs/heads/main"),
            ("BUILD_SOURCEBRANCHNAME", "main"),
            (
                "BUILD_SOURCEVERSION",
                "9fceb02d0ae598e95dc970b74767f19372d61af8",
            ),
            ("BUILD_REPOSITORY_NAME", "fleet-frontend"),
            ("BUILD_DEFINITIONNAME", "fleet-deploy"),
            ("SYSTEM_STAGENAME", "Orchestrate_Staging"),
            ("SYSTEM_JOBNAME", "OrchestrationJob"),
            ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/fleet/"),
            ("AGENT_TEMPDIRECTORY", "/agent/_work/_temp"),
            ("BUILD_ARTIFACTSTAGINGDIRECTORY", "/agent/_work/1/a"),
        ])
    }

    #[test]
    fn reads_the_predefined_variables() {
        let context = PipelineContext::read(&pipeline_env());
        assert_eq!(
            context.to_template_value(),
            json!({
                "in_pipeline": true,
                "build_id": "4711",
                "build_number": "20261122.3",
                "build_reason": "IndividualCI",
                "source_branch": "refs/heads/main",
                "source_branch_name": "main",
                "source_version": "9fceb02d0ae598e95dc970b74767f19372d61af8",
                "repository": "fleet-frontend",
                "pipeline": "fleet-deploy",
                "collection_uri": "https://dev.azure.com/fleet/",
                "stage": "Orchestrate_Staging",
                "job": "OrchestrationJob",
                "temp_directory": "/agent/_work/_temp",
                "artifact_staging_directory": "/agent/_work/1/a",
            })
        );
    }

    fn render(context: &PipelineContext, source: &str) -> Result<String, minijinja::Error> {
        let renderer = Renderer::new(json!({ "ado": context.to_template_value() }));
        renderer
            .render(&Template(Spanned::detached(source.to_owned())))
            .map_err(|err| err.source)
    }

    #[test]
    fn templates_fall_back_outside_a_pipeline_and_catch_typos() {
        let local = PipelineContext::read(&AgentEnv::default());
        let image = "fleet:{{ ado.build_id | default('local') }}";
        assert_eq!(render(&local, image).unwrap(), "fleet:local");
        assert_eq!(
            render(&PipelineContext::read(&pipeline_env()), image).unwrap(),
            "fleet:4711"
        );
        assert!(render(&local, "{{ ado.build_id }}").is_err());
        assert_eq!(
            render(&local, "{% if not ado.in_pipeline %}laptop{% endif %}").unwrap(),
            "laptop"
        );
    }

    #[test]
    fn the_run_url_points_at_the_build_results() {
        let context = PipelineContext::read(&AgentEnv::from_vars([
            ("TF_BUILD", "True"),
            ("BUILD_BUILDID", "4711"),
            ("SYSTEM_TEAMPROJECT", "Fleet Management"),
            ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/contoso/"),
        ]));
        assert_eq!(
            context.run_url().as_deref(),
            Some("https://dev.azure.com/contoso/Fleet%20Management/_build/results?buildId=4711")
        );
        assert_eq!(PipelineContext::default().run_url(), None);
    }
}
