//! Azure Repos, from inside an Azure Pipelines job: the push's credentials and the pull
//! request REST API.
//!
//! - Create: `POST {collection}{project}/_apis/git/repositories/{id}/pullrequests?api-version=7.1`
//!   with `sourceRefName`, `targetRefName`, `title`, `description`, `isDraft`; 201 with the
//!   `GitPullRequest` (`pullRequestId`, `repository.name`, ...).
//!   <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests/create?view=azure-devops-rest-7.1>
//! - An active pull request for the same source and target already exists: 409 with
//!   `TF401179` in `message` (`GitPullRequestExistsException`).
//! - Find it: `GET .../pullrequests?searchCriteria.sourceRefName=refs/heads/B&searchCriteria.targetRefName=refs/heads/T&searchCriteria.status=active&api-version=7.1`,
//!   `{"value": [GitPullRequest], "count": n}`.
//!   <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests/get-pull-requests?view=azure-devops-rest-7.1>
//! - Update it: `PATCH .../pullrequests/{id}?api-version=7.1` with `title` and `description`.
//!   <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests/update?view=azure-devops-rest-7.1>
//!
//! The job's token (`System.AccessToken`, mapped as `SYSTEM_ACCESSTOKEN`) is a bearer token for
//! both the REST calls and git, where it goes as `http.extraheader` (what the `checkout` step
//! does with `persistCredentials`). A description longer than 4,000 characters is refused, so
//! it is cut.

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use super::description;
use super::forge_api::ForgeApi;
use super::{Opened, PullRequestError, Request};
use crate::ado::pipeline_context::PipelineContext;
use crate::core::agent_env::AgentEnv;
use crate::core::secret::Secret;

const SERVICE: &str = "Azure Repos";
const API_VERSION: &str = "7.1";
/// Azure Repos refuses a longer pull request description.
const DESCRIPTION_LIMIT: usize = 4_000;

/// What the project's build service needs to push the branch.
pub(super) const PUSH_GRANT: &str = "allow `Contribute` and `Create branch` on the repository \
     to the project's build service (Project settings → Repositories → Security)";
/// What it needs to open and update pull requests.
const PULL_REQUEST_GRANT: &str = "allow `Contribute to pull requests` on the repository to the \
     project's build service (Project settings → Repositories → Security)";
const TOKEN_HINT: &str =
    "map the job's token into the task: `env: {SYSTEM_ACCESSTOKEN: $(System.AccessToken)}`";
const API: ForgeApi = ForgeApi {
    service: SERVICE,
    grant: PULL_REQUEST_GRANT,
    token_hint: TOKEN_HINT,
};

pub(super) struct AzureRepos {
    client: reqwest::Client,
    /// `{collection}{project}/_apis/git/repositories/{id}`.
    repository_api: Url,
    /// `{collection}{project}/_git/`, for the pull request's web link.
    web_git: Url,
    repository_name: Option<String>,
    token: Secret,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullRequest {
    pull_request_id: u64,
    #[serde(default)]
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Repository {
    name: Option<String>,
}

#[derive(Deserialize)]
struct PullRequestList {
    value: Vec<PullRequest>,
}

#[derive(Deserialize)]
struct ServiceError {
    message: Option<String>,
}

impl AzureRepos {
    /// From the job's predefined variables; `token` overrides `SYSTEM_ACCESSTOKEN`.
    pub(super) fn from_env(
        env: &AgentEnv,
        token: Option<Secret>,
    ) -> Result<Self, PullRequestError> {
        let var = |name: &'static str, hint: &'static str| {
            env.var(name)
                .ok_or(PullRequestError::MissingVariable { name, hint })
        };
        const PIPELINE: &str = "the `azure_repos` provider runs inside an Azure Pipelines job";
        let collection = var("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI", PIPELINE)?;
        let project = var("SYSTEM_TEAMPROJECT", PIPELINE)?;
        let repository = var("BUILD_REPOSITORY_ID", PIPELINE)?;
        let token = match token {
            Some(token) => token,
            None => Secret::new(var("SYSTEM_ACCESSTOKEN", TOKEN_HINT)?),
        };
        let project_url =
            project_url(collection, project).ok_or(PullRequestError::MissingVariable {
                name: "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
                hint: "it is not a URL",
            })?;
        let mut repository_api = project_url.clone();
        let mut web_git = project_url;
        if let Ok(mut segments) = repository_api.path_segments_mut() {
            segments.extend(["_apis", "git", "repositories", repository]);
        }
        if let Ok(mut segments) = web_git.path_segments_mut() {
            segments.extend(["_git", ""]);
        }
        let client = crate::http::http_client_builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|source| PullRequestError::Transport {
                service: SERVICE,
                action: "build a client",
                source,
            })?;
        Ok(Self {
            client,
            repository_api,
            web_git,
            repository_name: env.var("BUILD_REPOSITORY_NAME").map(str::to_owned),
            token,
        })
    }

    /// git's `http.extraheader` for the push.
    pub(super) fn push_header(&self) -> Secret {
        Secret::new(format!("AUTHORIZATION: bearer {}", self.token.expose()))
    }

    pub(super) fn run_link(&self, env: &AgentEnv) -> Option<String> {
        build_link(env)
    }

    pub(super) async fn open_or_update(
        &self,
        request: &Request<'_>,
    ) -> Result<Opened, PullRequestError> {
        let description = description::cut(
            request.description,
            DESCRIPTION_LIMIT,
            SERVICE,
            request.run_id,
        );
        let source = format!("refs/heads/{}", request.branch);
        let target = format!("refs/heads/{}", request.target);
        if let Some(existing) = self.find_active(&source, &target).await? {
            return self.update(existing, request.title, &description).await;
        }
        let body = json!({
            "sourceRefName": source,
            "targetRefName": target,
            "title": request.title,
            "description": description,
            "isDraft": request.draft,
        });
        let url = self.url(&["pullrequests"], &[]);
        let response = self
            .send(Method::POST, url, Some(&body), "open the pull request")
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {
                let created: PullRequest = API.read_json(response, "open the pull request").await?;
                Ok(self.opened(&created, true))
            }
            // TF401179: one was opened since we looked (another job of the same run).
            StatusCode::CONFLICT => match self.find_active(&source, &target).await? {
                Some(existing) => self.update(existing, request.title, &description).await,
                None => Err(error(response, "open the pull request").await),
            },
            _ => Err(error(response, "open the pull request").await),
        }
    }

    async fn find_active(
        &self,
        source: &str,
        target: &str,
    ) -> Result<Option<PullRequest>, PullRequestError> {
        const ACTION: &str = "list the branch's pull requests";
        let url = self.url(
            &["pullrequests"],
            &[
                ("searchCriteria.sourceRefName", source),
                ("searchCriteria.targetRefName", target),
                ("searchCriteria.status", "active"),
            ],
        );
        let response = self.send(Method::GET, url, None, ACTION).await?;
        if !response.status().is_success() {
            return Err(error(response, ACTION).await);
        }
        let list: PullRequestList = API.read_json(response, ACTION).await?;
        Ok(list.value.into_iter().next())
    }

    async fn update(
        &self,
        existing: PullRequest,
        title: &str,
        description: &str,
    ) -> Result<Opened, PullRequestError> {
        const ACTION: &str = "update the pull request";
        let id = existing.pull_request_id.to_string();
        let url = self.url(&["pullrequests", &id], &[]);
        let body = json!({ "title": title, "description": description });
        let response = self.send(Method::PATCH, url, Some(&body), ACTION).await?;
        if !response.status().is_success() {
            return Err(error(response, ACTION).await);
        }
        let updated: PullRequest = API.read_json(response, ACTION).await?;
        Ok(self.opened(&updated, false))
    }

    fn opened(&self, pull_request: &PullRequest, created: bool) -> Opened {
        let name = pull_request
            .repository
            .as_ref()
            .and_then(|r| r.name.clone())
            .or_else(|| self.repository_name.clone())
            .unwrap_or_else(|| {
                self.repository_api
                    .path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_owned))
                    .unwrap_or_default()
            });
        let mut url = self.web_git.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([
                name.as_str(),
                "pullrequest",
                &pull_request.pull_request_id.to_string(),
            ]);
        }
        Opened {
            id: pull_request.pull_request_id,
            url: url.to_string(),
            created,
        }
    }

    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.repository_api.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(path);
        }
        {
            let mut pairs = url.query_pairs_mut();
            pairs.extend_pairs(query);
            pairs.append_pair("api-version", API_VERSION);
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        action: &'static str,
    ) -> Result<reqwest::Response, PullRequestError> {
        let request = self
            .client
            .request(method, url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        API.send(request, body, action).await
    }
}

/// `{collection}{project}` as a URL with the project as one path segment.
fn project_url(collection: &str, project: &str) -> Option<Url> {
    let mut url = Url::parse(collection).ok()?;
    url.path_segments_mut().ok()?.pop_if_empty().push(project);
    Some(url)
}

/// The build's results page: `{collection}{project}/_build/results?buildId={id}`.
pub(super) fn build_link(env: &AgentEnv) -> Option<String> {
    PipelineContext::read(env).run_url()
}

async fn error(response: reqwest::Response, action: &'static str) -> PullRequestError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ServiceError>(&text)
        .ok()
        .and_then(|e| e.message)
        .unwrap_or_else(|| text.chars().take(200).collect());
    PullRequestError::Service {
        service: SERVICE,
        action,
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_link_and_the_api_urls_encode_the_project() {
        let env = AgentEnv::from_vars([
            (
                "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
                "https://dev.azure.com/contoso/",
            ),
            ("SYSTEM_TEAMPROJECT", "Fleet Ops"),
            ("BUILD_BUILDID", "42"),
            ("BUILD_REPOSITORY_ID", "3a9f"),
            ("SYSTEM_ACCESSTOKEN", "t"),
        ]);
        assert_eq!(
            build_link(&env).as_deref(),
            Some("https://dev.azure.com/contoso/Fleet%20Ops/_build/results?buildId=42")
        );
        let repos = AzureRepos::from_env(&env, None).expect("from env");
        assert_eq!(
            repos
                .url(&["pullrequests"], &[("searchCriteria.status", "active")])
                .as_str(),
            "https://dev.azure.com/contoso/Fleet%20Ops/_apis/git/repositories/3a9f/pullrequests?searchCriteria.status=active&api-version=7.1"
        );
    }

    #[test]
    fn without_the_job_token_it_says_how_to_map_it() {
        let env = AgentEnv::from_vars([
            (
                "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
                "https://dev.azure.com/contoso/",
            ),
            ("SYSTEM_TEAMPROJECT", "p"),
            ("BUILD_REPOSITORY_ID", "r"),
        ]);
        let error = AzureRepos::from_env(&env, None).err().expect("no token");
        assert_eq!(
            error.to_string(),
            "`SYSTEM_ACCESSTOKEN` is not set: map the job's token into the task: `env: {SYSTEM_ACCESSTOKEN: $(System.AccessToken)}`"
        );
    }
}
