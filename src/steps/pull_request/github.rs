//! GitHub (and GitHub Enterprise through `GITHUB_API_URL`): the push's credentials and the
//! pull request REST API.
//!
//! - Create: `POST {api}/repos/{owner}/{repo}/pulls` with `title`, `head`, `base`, `body`,
//!   `draft`; 201 with the pull request (`number`, `html_url`). One already open for the head
//!   branch: 422 `Validation Failed`, `errors: [{"resource": "PullRequest", "code": "custom",
//!   "message": "A pull request already exists for owner:branch."}]`.
//!   <https://docs.github.com/en/rest/pulls/pulls#create-a-pull-request>
//! - Find it: `GET .../pulls?head=owner:branch&base=target&state=open`, an array.
//!   <https://docs.github.com/en/rest/pulls/pulls#list-pull-requests>
//! - Update it: `PATCH .../pulls/{number}` with `title` and `body`.
//!   <https://docs.github.com/en/rest/pulls/pulls#update-a-pull-request>
//!
//! The token (`GITHUB_TOKEN`, or `token:`) is a bearer token for the API; git gets it as
//! `AUTHORIZATION: basic base64(x-access-token:TOKEN)` in `http.extraheader`, as
//! `actions/checkout` does. A body is cut to 65,536 characters.

use base64::Engine as _;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use super::description;
use super::forge_api::ForgeApi;
use super::{Opened, PullRequestError, Request};
use crate::core::agent_env::AgentEnv;
use crate::core::secret::Secret;

const SERVICE: &str = "GitHub";
const DEFAULT_API: &str = "https://api.github.com";
const BODY_LIMIT: usize = 65_536;

pub(super) const PUSH_GRANT: &str =
    "give the token `contents: write` (the workflow's or job's `permissions:`)";
const PULL_REQUEST_GRANT: &str =
    "give the token `pull-requests: write` (the workflow's or job's `permissions:`)";
const TOKEN_HINT: &str =
    "pass the job's token: `env: {GITHUB_TOKEN: ${{ github.token }}}`, or set `token:`";
const API: ForgeApi = ForgeApi {
    service: SERVICE,
    grant: PULL_REQUEST_GRANT,
    token_hint: TOKEN_HINT,
};

pub(super) struct GitHub {
    client: reqwest::Client,
    /// `{api}/repos/{owner}/{repo}`.
    repository_api: Url,
    owner: String,
    token: Secret,
}

#[derive(Deserialize)]
struct PullRequest {
    number: u64,
    html_url: String,
}

#[derive(Deserialize)]
struct ServiceError {
    message: Option<String>,
    #[serde(default)]
    errors: Vec<FieldError>,
}

#[derive(Deserialize)]
struct FieldError {
    message: Option<String>,
}

impl GitHub {
    /// `token` overrides `GITHUB_TOKEN`; the repository is `GITHUB_REPOSITORY`, else read
    /// from `origin` (`https://github.com/owner/name.git`, `git@github.com:owner/name.git`).
    pub(super) fn from_env(
        env: &AgentEnv,
        token: Option<Secret>,
        origin: Option<&str>,
    ) -> Result<Self, PullRequestError> {
        let token = match token {
            Some(token) => token,
            None => Secret::new(env.var("GITHUB_TOKEN").ok_or(
                PullRequestError::MissingVariable {
                    name: "GITHUB_TOKEN",
                    hint: TOKEN_HINT,
                },
            )?),
        };
        let (owner, name) = env
            .var("GITHUB_REPOSITORY")
            .and_then(split_repository)
            .or_else(|| origin.and_then(repository_of_remote))
            .ok_or(PullRequestError::NoGitHubRepository)?;
        let api = env.var("GITHUB_API_URL").unwrap_or(DEFAULT_API);
        let mut repository_api =
            Url::parse(api).map_err(|_| PullRequestError::MissingVariable {
                name: "GITHUB_API_URL",
                hint: "it is not a URL",
            })?;
        if let Ok(mut segments) = repository_api.path_segments_mut() {
            segments.pop_if_empty().extend(["repos", &owner, &name]);
        }
        let client = crate::http::http_client_builder()
            .timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("agent-orch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| PullRequestError::Transport {
                service: SERVICE,
                action: "build a client",
                source,
            })?;
        Ok(Self {
            client,
            repository_api,
            owner,
            token,
        })
    }

    pub(super) fn push_header(&self) -> Secret {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("x-access-token:{}", self.token.expose()));
        Secret::new(format!("AUTHORIZATION: basic {basic}"))
    }

    pub(super) async fn open_or_update(
        &self,
        request: &Request<'_>,
    ) -> Result<Opened, PullRequestError> {
        const ACTION: &str = "open the pull request";
        let body = description::cut(request.description, BODY_LIMIT, SERVICE, request.run_id);
        if let Some(existing) = self.find_open(request).await? {
            return self.update(existing.number, request.title, &body).await;
        }
        let payload = json!({
            "title": request.title,
            "head": request.branch,
            "base": request.target,
            "body": body,
            "draft": request.draft,
        });
        let response = self
            .send(
                Method::POST,
                self.url(&["pulls"], &[]),
                Some(&payload),
                ACTION,
            )
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {
                let created: PullRequest = API.read_json(response, ACTION).await?;
                Ok(Opened {
                    id: created.number,
                    url: created.html_url,
                    created: true,
                })
            }
            // "A pull request already exists": opened since we looked.
            StatusCode::UNPROCESSABLE_ENTITY => match self.find_open(request).await? {
                Some(existing) => self.update(existing.number, request.title, &body).await,
                None => Err(error(response, ACTION).await),
            },
            _ => Err(error(response, ACTION).await),
        }
    }

    async fn find_open(
        &self,
        request: &Request<'_>,
    ) -> Result<Option<PullRequest>, PullRequestError> {
        const ACTION: &str = "list the branch's pull requests";
        let head = format!("{}:{}", self.owner, request.branch);
        let url = self.url(
            &["pulls"],
            &[("head", &head), ("base", request.target), ("state", "open")],
        );
        let response = self.send(Method::GET, url, None, ACTION).await?;
        if !response.status().is_success() {
            return Err(error(response, ACTION).await);
        }
        let open: Vec<PullRequest> = API.read_json(response, ACTION).await?;
        Ok(open.into_iter().next())
    }

    async fn update(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<Opened, PullRequestError> {
        const ACTION: &str = "update the pull request";
        let url = self.url(&["pulls", &number.to_string()], &[]);
        let payload = json!({ "title": title, "body": body });
        let response = self
            .send(Method::PATCH, url, Some(&payload), ACTION)
            .await?;
        if !response.status().is_success() {
            return Err(error(response, ACTION).await);
        }
        let updated: PullRequest = API.read_json(response, ACTION).await?;
        Ok(Opened {
            id: updated.number,
            url: updated.html_url,
            created: false,
        })
    }

    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.repository_api.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
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
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        API.send(request, body, action).await
    }
}

/// The workflow run's page: `{GITHUB_SERVER_URL}/{GITHUB_REPOSITORY}/actions/runs/{GITHUB_RUN_ID}`.
pub(super) fn run_link(env: &AgentEnv) -> Option<String> {
    Some(format!(
        "{}/{}/actions/runs/{}",
        env.var("GITHUB_SERVER_URL")?.trim_end_matches('/'),
        env.var("GITHUB_REPOSITORY")?,
        env.var("GITHUB_RUN_ID")?
    ))
}

fn split_repository(text: &str) -> Option<(String, String)> {
    let (owner, name) = text.split_once('/')?;
    (!owner.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| (owner.to_owned(), name.to_owned()))
}

/// `owner/name` from a remote URL: its last two path segments, without `.git`.
fn repository_of_remote(url: &str) -> Option<(String, String)> {
    let path = url.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = path.rsplit(['/', ':']);
    let name = parts.next()?;
    let owner = parts.next()?;
    split_repository(&format!("{owner}/{name}"))
}

async fn error(response: reqwest::Response, action: &'static str) -> PullRequestError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let message = match serde_json::from_str::<ServiceError>(&text) {
        Ok(error) => {
            let details: Vec<String> = error.errors.into_iter().filter_map(|e| e.message).collect();
            match (error.message, details.is_empty()) {
                (Some(message), true) => message,
                (Some(message), false) => format!("{message}: {}", details.join("; ")),
                (None, _) => details.join("; "),
            }
        }
        Err(_) => text.chars().take(200).collect(),
    };
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
    fn the_repository_comes_from_any_remote_form() {
        for remote in [
            "https://github.com/contoso/fleet.git",
            "git@github.com:contoso/fleet.git",
            "https://ghe.example.com/contoso/fleet/",
        ] {
            assert_eq!(
                repository_of_remote(remote),
                Some(("contoso".to_owned(), "fleet".to_owned())),
                "{remote}"
            );
        }
    }

    #[test]
    fn git_gets_the_token_as_basic_auth_for_x_access_token() {
        let env = AgentEnv::from_vars([("GITHUB_REPOSITORY", "contoso/fleet")]);
        let github = GitHub::from_env(&env, Some(Secret::new("ghs_abc")), None).expect("github");
        // base64("x-access-token:ghs_abc")
        assert_eq!(
            github.push_header().expose(),
            "AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX2FiYw=="
        );
        assert_eq!(
            github.url(&["pulls"], &[("head", "contoso:b")]).as_str(),
            "https://api.github.com/repos/contoso/fleet/pulls?head=contoso%3Ab"
        );
    }
}
