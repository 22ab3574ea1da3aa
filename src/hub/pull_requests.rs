//! The hub asks the forge whether the pull requests of tasks in review have ended: merged, the
//! task is `done`; closed unmerged, `blocked` (as `POST /api/tasks/{id}/pull-request` would).
//! Only with a token (`AGENT_ORCH_FORGE_TOKEN`); the task's `pr_url` says which API to ask:
//!
//! - GitHub, `https://github.com/{owner}/{repo}/pull/{number}`: `GET
//!   {api}/repos/{owner}/{repo}/pulls/{number}`, `merged: true` once merged, `state: closed`
//!   once closed. <https://docs.github.com/en/rest/pulls/pulls#get-a-pull-request>
//! - Azure Repos, `{collection}/{project}/_git/{repo}/pullrequest/{id}`: `GET
//!   {collection}/{project}/_apis/git/repositories/{repo}/pullrequests/{id}?api-version=7.1`,
//!   `status: completed` once merged, `abandoned` once closed.
//!   <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests/get-pull-request?view=azure-devops-rest-7.1>
//!
//! A forge that answers with a rate limit is not asked again, for any task, until the wait it
//! named is over (see `forge_api`): asking on while limited is what gets a token banned.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;

use super::api::HubState;
use super::events::HubEvent;
use crate::core::secret::Secret;
use crate::steps::pull_request::PullRequestError;
use crate::steps::pull_request::forge_api::ForgeApi;

/// The variable the hub reads its forge token from; unset, the hub does not poll.
pub const FORGE_TOKEN_ENV: &str = "AGENT_ORCH_FORGE_TOKEN";

/// GitHub's API, unless `--github-api-url` names an Enterprise server.
pub const DEFAULT_GITHUB_API: &str = "https://api.github.com";

const GITHUB: ForgeApi = ForgeApi {
    service: "GitHub",
    grant: "give the hub's token `pull-requests: read`",
    token_hint: "set AGENT_ORCH_FORGE_TOKEN to a token that reads pull requests",
};
const AZURE_REPOS: ForgeApi = ForgeApi {
    service: "Azure Repos",
    grant: "give the hub's token `Code (Read)`",
    token_hint: "set AGENT_ORCH_FORGE_TOKEN to a token that reads pull requests",
};
const ACTION: &str = "read the pull request";

/// `--github-api-url`'s check: an `http(s)` URL.
pub fn api_url(text: &str) -> Result<String, String> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(text.to_owned()),
        _ => Err(format!("`{text}` is not an http(s) URL")),
    }
}

/// How the hub polls pull requests.
#[derive(Clone, Debug)]
pub struct PullRequestPolling {
    pub token: Secret,
    /// GitHub's REST API root (a URL), for `github.com` pull request URLs.
    pub github_api: String,
    pub interval: Duration,
}

/// Where a pull request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullRequestState {
    Open,
    Merged,
    ClosedUnmerged,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("`{0}` is not a GitHub or Azure Repos pull request URL")]
    UnknownUrl(String),
    #[error(transparent)]
    Forge(#[from] PullRequestError),
    /// The forge rate limited an earlier request and its wait is not over; not asked.
    #[error("{origin} is rate limiting the hub's token for another {}", humantime::format_duration(*.left))]
    Paused { origin: String, left: Duration },
}

#[derive(Deserialize)]
struct GitHubPullRequest {
    merged: bool,
    state: String,
}

#[derive(Deserialize)]
struct AzurePullRequest {
    status: String,
}

pub struct PullRequestPoller {
    client: reqwest::Client,
    polling: PullRequestPolling,
    /// When each forge API (by origin) that rate limited the hub may be asked again.
    paused_until: Mutex<HashMap<String, Instant>>,
}

impl PullRequestPoller {
    pub fn new(polling: PullRequestPolling) -> Result<PullRequestPoller, reqwest::Error> {
        let client = crate::http::http_client_builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("agent-orch/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(PullRequestPoller {
            client,
            polling,
            paused_until: Mutex::new(HashMap::new()),
        })
    }

    /// Asks the forge of `pr_url` where its pull request stands, unless that forge rate
    /// limited the hub and its wait is not over ([`PollError::Paused`]).
    pub async fn state(&self, pr_url: &str) -> Result<PullRequestState, PollError> {
        let (forge, api) = self.api_of(pr_url)?;
        let origin = api.origin().ascii_serialization();
        if let Some(left) = self.pause_left(&origin) {
            return Err(PollError::Paused { origin, left });
        }
        let state = self.ask(forge, api).await;
        if let Err(PollError::Forge(PullRequestError::RateLimited { wait, .. })) = &state {
            self.lock_pauses().insert(origin, Instant::now() + *wait);
        }
        state
    }

    /// Which forge `pr_url` is on, and its API's URL for that pull request.
    fn api_of(&self, pr_url: &str) -> Result<(Forge, Url), PollError> {
        let unknown = || PollError::UnknownUrl(pr_url.to_owned());
        let url = Url::parse(pr_url).map_err(|_| unknown())?;
        let segments: Vec<&str> = url
            .path_segments()
            .map(Iterator::collect)
            .unwrap_or_default();
        match segments.as_slice() {
            [.., owner, repo, "pull", number] => {
                // Segments as they are in the URL (percent-encoded): joined, not encoded again.
                let root = self.polling.github_api.trim_end_matches('/');
                let api = Url::parse(&format!("{root}/repos/{owner}/{repo}/pulls/{number}"))
                    .map_err(|_| unknown())?;
                Ok((Forge::GitHub, api))
            }
            [project @ .., "_git", repo, "pullrequest", id] => {
                let mut api = url.clone();
                api.set_query(None);
                api.set_fragment(None);
                let project = project.join("/");
                api.set_path(&format!(
                    "/{project}/_apis/git/repositories/{repo}/pullrequests/{id}"
                ));
                api.query_pairs_mut().append_pair("api-version", "7.1");
                Ok((Forge::AzureRepos, api))
            }
            _ => Err(unknown()),
        }
    }

    async fn ask(&self, forge: Forge, api: Url) -> Result<PullRequestState, PollError> {
        let token = self.polling.token.expose();
        match forge {
            Forge::GitHub => {
                let request = self
                    .client
                    .get(api)
                    .bearer_auth(token)
                    .header("accept", "application/vnd.github+json");
                let response = GITHUB.send(request, None, ACTION).await?;
                let response = checked(&GITHUB, response).await?;
                let pull: GitHubPullRequest = GITHUB.read_json(response, ACTION).await?;
                Ok(match (pull.merged, pull.state.as_str()) {
                    (true, _) => PullRequestState::Merged,
                    (false, "closed") => PullRequestState::ClosedUnmerged,
                    _ => PullRequestState::Open,
                })
            }
            Forge::AzureRepos => {
                let request = self.client.get(api).bearer_auth(token);
                let response = AZURE_REPOS.send(request, None, ACTION).await?;
                let response = checked(&AZURE_REPOS, response).await?;
                let pull: AzurePullRequest = AZURE_REPOS.read_json(response, ACTION).await?;
                Ok(match pull.status.as_str() {
                    "completed" => PullRequestState::Merged,
                    "abandoned" => PullRequestState::ClosedUnmerged,
                    _ => PullRequestState::Open,
                })
            }
        }
    }

    /// How long `origin` is still paused for, forgetting a pause that is over.
    fn pause_left(&self, origin: &str) -> Option<Duration> {
        let mut pauses = self.lock_pauses();
        let left = pauses
            .get(origin)
            .map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero());
        if left.is_none() {
            pauses.remove(origin);
        }
        left
    }

    fn lock_pauses(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic elsewhere while holding it leaves the map usable: it only holds deadlines.
        self.paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Clone, Copy)]
enum Forge {
    GitHub,
    AzureRepos,
}

/// Any other error status than the 401 and 403 [`ForgeApi::send`] names.
async fn checked(
    api: &ForgeApi,
    response: reqwest::Response,
) -> Result<reqwest::Response, PullRequestError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    Err(PullRequestError::Service {
        service: api.service,
        action: ACTION,
        status: status.as_u16(),
        message: text.chars().take(300).collect(),
    })
}

/// Ends the review of every task in the merge queue whose pull request merged or closed; the
/// tasks it moved. A pull request the forge cannot tell about is asked again next time.
pub async fn poll_merge_queue(state: &HubState, poller: &PullRequestPoller) -> Vec<i64> {
    let Ok(queue) = state.store.merge_queue().await else {
        return Vec::new();
    };
    let mut moved = Vec::new();
    for task in queue {
        let Some(pr_url) = task.pr_url.as_deref() else {
            continue;
        };
        let merged = match poller.state(pr_url).await {
            Ok(PullRequestState::Merged) => true,
            Ok(PullRequestState::ClosedUnmerged) => false,
            Ok(PullRequestState::Open) | Err(PollError::Paused { .. }) => continue,
            Err(err) => {
                use std::io::Write as _;
                let line = format!("task {}: cannot poll its pull request: {err}", task.id);
                let _ = writeln!(std::io::stderr().lock(), "{line}");
                continue;
            }
        };
        // A report by hand (or another replica) may have ended it first: its 409 is fine.
        if let Ok(ended) = state.store.end_review(task.id, merged).await {
            moved.push(ended.id);
            state
                .events
                .publish(&HubEvent::TaskUpdated(Box::new(ended)));
        }
    }
    moved
}

/// The lease one replica holds to poll for all of them.
const POLL_LEASE: &str = "pull_request_poll";

/// Polls every `interval` for as long as the hub runs, while this replica holds the poll's
/// lease: replicas on one database take turns instead of each asking the forge about every
/// pull request. The lease runs three intervals, so a stopped replica's turn passes on after
/// at most that. `replica` names this hub among them.
pub async fn poll_periodically(
    state: HubState,
    poller: PullRequestPoller,
    interval: Duration,
    replica: String,
) {
    let interval = interval.max(Duration::from_millis(50));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // A database hiccup skips a round; the next one asks again.
        if let Ok(true) = state
            .store
            .hold_lease(POLL_LEASE, &replica, interval * 3)
            .await
        {
            poll_merge_queue(&state, &poller).await;
        }
    }
}
