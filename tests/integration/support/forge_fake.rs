//! A local code host: a bare git repository served over smart HTTP (the real `git
//! http-backend`, as a CGI program), with Azure Repos' or GitHub's pull request REST API beside
//! it. Every request is recorded, with its `Authorization` header and JSON body, so tests
//! check what the client sent and how.
//!
//! - git: `/git/origin.git/...`, answered by `git http-backend` over the bare repository
//!   (<https://git-scm.com/docs/git-http-backend>). The credentials must be the job's token, as
//!   Azure Repos takes it (`Authorization: bearer TOKEN`) or GitHub does (`basic
//!   base64(x-access-token:TOKEN)`); otherwise 401. With pushes denied, the receive-pack
//!   requests get 403, as a service without `Contribute` answers.
//! - Azure Repos, `{org}/{project}/_apis/git/repositories/{id}/pullrequests`
//!   (<https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests?view=azure-devops-rest-7.1>):
//!   `POST` creates (201, `GitPullRequest`), or answers 409 `TF401179` when an active one
//!   exists for the same source and target, or 400 `TF401398` when the source branch was not
//!   pushed; `GET ?searchCriteria.sourceRefName=..&searchCriteria.targetRefName=..&searchCriteria.status=active`
//!   lists (`{"value": [...], "count": n}`); `PATCH .../{id}` updates title and description;
//!   `GET .../{id}` reads one, its `status` `active`, `completed` (merged) or `abandoned`; there
//!   the repository is named by its id or, as Azure DevOps also takes it, its name.
//!   A description over 4,000 characters is refused (400). Every call needs `api-version=7.1`
//!   and `Authorization: Bearer TOKEN`. Denied: 403 `TF401027` (`PullRequestContribute`).
//! - GitHub, `/repos/{owner}/{repo}/pulls`
//!   (<https://docs.github.com/en/rest/pulls/pulls>): `POST` creates (201), or 422
//!   `A pull request already exists for owner:branch.`, or 422 on an unknown `head`; `GET
//!   ?head=owner:branch&base=..&state=open` lists; `PATCH .../{number}` updates; `GET
//!   .../{number}` reads one (`state` `open` or `closed`, `merged`). Calls need
//!   `Authorization: Bearer TOKEN`, a `User-Agent` and `Accept: application/vnd.github+json`.
//!   Denied: 403 `Resource not accessible by integration`.
//! - Rate limited (either flavor, REST calls only), as each service documents it: GitHub's
//!   primary limit, 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` in UTC epoch
//!   seconds (<https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api#rate-limit-errors>);
//!   Azure DevOps, 429 with `Retry-After` in seconds
//!   (<https://learn.microsoft.com/en-us/azure/devops/integrate/concepts/rate-limits>).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, patch};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

/// Which service's API and credentials the fake plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    AzureRepos,
    GitHub,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) authorization: Option<String>,
    pub(crate) body: Value,
    pub(crate) status: u16,
}

/// A pull request the fake holds.
#[derive(Clone, Debug)]
pub(crate) struct FakePullRequest {
    pub(crate) id: u64,
    pub(crate) source: String,
    pub(crate) target: String,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) draft: bool,
    pub(crate) state: FakeState,
}

/// Where a fake pull request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FakeState {
    Open,
    Merged,
    Closed,
}

struct Shared {
    flavor: Flavor,
    token: String,
    bare: PathBuf,
    deny_push: AtomicBool,
    deny_pull_requests: AtomicBool,
    /// While set, REST calls are answered with a rate limit lasting this many seconds more.
    rate_limit_seconds: Mutex<Option<u64>>,
    requests: Mutex<Vec<Recorded>>,
    pull_requests: Mutex<Vec<FakePullRequest>>,
}

pub(crate) struct ForgeFake {
    pub(crate) addr: SocketAddr,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub(crate) const ORG: &str = "contoso";
pub(crate) const PROJECT: &str = "Fleet Ops";
pub(crate) const REPOSITORY_ID: &str = "5f1c2a7e-8d3b-4e6f-9a0b-1c2d3e4f5a6b";
pub(crate) const REPOSITORY_NAME: &str = "fleet-frontend";
pub(crate) const OWNER: &str = "contoso";

impl ForgeFake {
    /// Serves an empty bare repository, `main` seeded by the caller's first push; accepts
    /// `token` only.
    pub(crate) fn start(flavor: Flavor, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("origin.git");
        let status = std::process::Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&bare)
            .status()
            .unwrap();
        assert!(status.success());
        let shared = Arc::new(Shared {
            flavor,
            token: token.to_owned(),
            bare,
            deny_push: AtomicBool::new(false),
            deny_pull_requests: AtomicBool::new(false),
            rate_limit_seconds: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            pull_requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/git/{*path}", any(git_http))
            .route(
                "/{org}/{project}/_apis/git/repositories/{repository}/pullrequests",
                get(azure_list).post(azure_create),
            )
            .route(
                "/{org}/{project}/_apis/git/repositories/{repository}/pullrequests/{id}",
                patch(azure_update).get(azure_get),
            )
            .route(
                "/repos/{owner}/{repo}/pulls",
                get(github_list).post(github_create),
            )
            .route(
                "/repos/{owner}/{repo}/pulls/{number}",
                patch(github_update).get(github_get),
            )
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            addr,
            shared,
            _dir: dir,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The remote URL of the repository (what `origin` is set to).
    pub(crate) fn git_url(&self) -> String {
        format!("http://{}/git/origin.git", self.addr)
    }

    /// `SYSTEM_TEAMFOUNDATIONCOLLECTIONURI` (with its trailing slash, as the agent sets it).
    pub(crate) fn collection_uri(&self) -> String {
        format!("http://{}/{ORG}/", self.addr)
    }

    /// `GITHUB_API_URL`.
    pub(crate) fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn bare(&self) -> &Path {
        &self.shared.bare
    }

    pub(crate) fn deny_push(&self, deny: bool) {
        self.shared.deny_push.store(deny, Ordering::SeqCst);
    }

    pub(crate) fn deny_pull_requests(&self, deny: bool) {
        self.shared.deny_pull_requests.store(deny, Ordering::SeqCst);
    }

    /// Rate limits every REST call, saying it ends `seconds` from each answer; `None` lifts it.
    pub(crate) fn rate_limit(&self, seconds: Option<u64>) {
        *self.shared.rate_limit_seconds.lock().unwrap() = seconds;
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The REST calls (not git's), as `METHOD path`.
    pub(crate) fn api_calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| !r.path.starts_with("/git/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub(crate) fn pull_requests(&self) -> Vec<FakePullRequest> {
        self.shared.pull_requests.lock().unwrap().clone()
    }

    /// A pull request from `source` into `main`, as someone opened it; its id.
    pub(crate) fn open_pull_request(&self, source: &str) -> u64 {
        let mut pull_requests = self.shared.pull_requests.lock().unwrap();
        let first = match self.shared.flavor {
            Flavor::AzureRepos => 101,
            Flavor::GitHub => 1,
        };
        let id = first + pull_requests.len() as u64;
        let (source, target) = match self.shared.flavor {
            Flavor::AzureRepos => (format!("refs/heads/{source}"), "refs/heads/main".to_owned()),
            Flavor::GitHub => (source.to_owned(), "main".to_owned()),
        };
        pull_requests.push(FakePullRequest {
            id,
            source,
            target,
            title: format!("pull request {id}"),
            description: String::new(),
            draft: false,
            state: FakeState::Open,
        });
        id
    }

    /// What a reviewer did: merged or closed the pull request `id`.
    pub(crate) fn set_state(&self, id: u64, state: FakeState) {
        let mut pull_requests = self.shared.pull_requests.lock().unwrap();
        let pr = pull_requests.iter_mut().find(|pr| pr.id == id).unwrap();
        pr.state = state;
    }
}

impl Drop for ForgeFake {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8], status: u16) {
        self.requests.lock().unwrap().push(Recorded {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            authorization: header(headers, "authorization"),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
            status,
        });
    }

    /// What git must send: the token, the way this service takes it.
    fn git_credentials_ok(&self, headers: &HeaderMap) -> bool {
        let Some(sent) = header(headers, "authorization") else {
            return false;
        };
        let (scheme, value) = sent.split_once(' ').unwrap_or(("", ""));
        match self.flavor {
            Flavor::AzureRepos => scheme.eq_ignore_ascii_case("bearer") && value == self.token,
            Flavor::GitHub => {
                let expected = base64::engine::general_purpose::STANDARD
                    .encode(format!("x-access-token:{}", self.token));
                scheme.eq_ignore_ascii_case("basic") && value == expected
            }
        }
    }

    fn api_credentials_ok(&self, headers: &HeaderMap) -> bool {
        header(headers, "authorization").as_deref() == Some(&format!("Bearer {}", self.token))
    }

    fn branch_exists(&self, branch: &str) -> bool {
        std::process::Command::new("git")
            .args([
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ])
            .current_dir(&self.bare)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// git's smart HTTP, through `git http-backend` as a CGI program.
async fn git_http(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let status = git_status(&shared, &uri, &headers);
    let response = match status {
        Some(status) => {
            let mut response = (status, "denied").into_response();
            if status == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert("www-authenticate", "Basic realm=\"fake\"".parse().unwrap());
            }
            response
        }
        None => http_backend(&shared, &method, &uri, &headers, &body).await,
    };
    shared.record(&method, &uri, &headers, &[], response.status().as_u16());
    response
}

fn git_status(shared: &Shared, uri: &Uri, headers: &HeaderMap) -> Option<StatusCode> {
    if !shared.git_credentials_ok(headers) {
        return Some(StatusCode::UNAUTHORIZED);
    }
    let receive_pack = uri.path().ends_with("/git-receive-pack")
        || uri
            .query()
            .unwrap_or_default()
            .contains("service=git-receive-pack");
    (receive_pack && shared.deny_push.load(Ordering::SeqCst)).then_some(StatusCode::FORBIDDEN)
}

async fn http_backend(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let root = shared.bare.parent().unwrap();
    let path_info = uri.path().strip_prefix("/git").unwrap_or(uri.path());
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        // An authenticated user: http-backend enables receive-pack only then.
        .env("REMOTE_USER", "build-service")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", path_info)
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = header(headers, name) {
            command.env(variable, value);
        }
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(body).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    cgi_response(&output.stdout)
}

/// A CGI program's output as a response: header lines (`Status:` among them), a blank
/// line, the body.
fn cgi_response(output: &[u8]) -> Response {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        });
    let Some((at, gap)) = split else {
        return (StatusCode::BAD_GATEWAY, "no CGI headers").into_response();
    };
    let head = String::from_utf8_lossy(&output[..at]);
    let mut response = Response::new(axum::body::Body::from(output[at + gap..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse().ok());
            *response.status_mut() = code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::OK);
        } else if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name.trim()),
            axum::http::HeaderValue::try_from(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn query_value(query: &str, key: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://fake/?{query}")).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The flavor's rate-limit answer, while the test has one set.
fn rate_limited(shared: &Shared) -> Option<Response> {
    let seconds = (*shared.rate_limit_seconds.lock().unwrap())?;
    Some(match shared.flavor {
        Flavor::GitHub => {
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + seconds;
            let mut response = json_response(
                StatusCode::FORBIDDEN,
                json!({"message": "API rate limit exceeded for installation ID 4242.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api", "status": "403"}),
            );
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", "5000".parse().unwrap());
            headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
            headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
            response
        }
        Flavor::AzureRepos => {
            let mut response = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"message": "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'ATCPU' in namespace 'User'."}),
            );
            let headers = response.headers_mut();
            headers.insert("retry-after", seconds.to_string().parse().unwrap());
            headers.insert("x-ratelimit-resource", "ATCPU".parse().unwrap());
            headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
            response
        }
    })
}

// --- Azure Repos -------------------------------------------------------------------------

/// Checks what every Azure Repos call needs; the error response if it falls short.
fn azure_refusal(
    shared: &Shared,
    repository: &str,
    query: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    if !shared.api_credentials_ok(headers) {
        return Some((StatusCode::UNAUTHORIZED, "").into_response());
    }
    if let Some(limited) = rate_limited(shared) {
        return Some(limited);
    }
    if query_value(query, "api-version").as_deref() != Some("7.1") {
        return Some(json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "VS800075: The project with id ... does not exist, or the api-version is missing.", "typeKey": "VssVersionOutOfRangeException"}),
        ));
    }
    if repository != REPOSITORY_ID {
        return Some(json_response(
            StatusCode::NOT_FOUND,
            json!({"message": format!("TF401019: The Git repository with name or identifier {repository} does not exist or you do not have permissions for the operation you are attempting."), "typeKey": "GitRepositoryNotFoundException"}),
        ));
    }
    shared.deny_pull_requests.load(Ordering::SeqCst).then(|| {
        json_response(
            StatusCode::FORBIDDEN,
            json!({"$id": "1", "innerException": null, "message": "TF401027: You need the Git 'PullRequestContribute' permission to perform this action. Details: identity 'Build\\\\5f1c', scope 'repository'.", "typeName": "Microsoft.TeamFoundation.Git.Server.GitNeedsPermissionException, Microsoft.TeamFoundation.Git.Server", "typeKey": "GitNeedsPermissionException", "errorCode": 0, "eventId": 3000}),
        )
    })
}

fn azure_pull_request(addr_path: &str, pr: &FakePullRequest) -> Value {
    json!({
        "repository": {"id": REPOSITORY_ID, "name": REPOSITORY_NAME, "url": format!("{addr_path}/_apis/git/repositories/{REPOSITORY_ID}")},
        "pullRequestId": pr.id,
        "codeReviewId": pr.id,
        "status": match pr.state {
            FakeState::Open => "active",
            FakeState::Merged => "completed",
            FakeState::Closed => "abandoned",
        },
        "creationDate": "2026-12-07T18:00:00Z",
        "title": pr.title,
        "description": pr.description,
        "sourceRefName": pr.source,
        "targetRefName": pr.target,
        "mergeStatus": "queued",
        "isDraft": pr.draft,
        "url": format!("{addr_path}/_apis/git/repositories/{REPOSITORY_ID}/pullRequests/{}", pr.id),
    })
}

async fn azure_list(
    State(shared): State<Arc<Shared>>,
    UrlPath((org, project, repository)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let response = azure_refusal(&shared, &repository, &query, &headers).unwrap_or_else(|| {
        let source = query_value(&query, "searchCriteria.sourceRefName");
        let target = query_value(&query, "searchCriteria.targetRefName");
        let found: Vec<Value> = shared
            .pull_requests
            .lock()
            .unwrap()
            .iter()
            .filter(|pr| source.as_ref().is_none_or(|s| *s == pr.source))
            .filter(|pr| target.as_ref().is_none_or(|t| *t == pr.target))
            .map(|pr| azure_pull_request(&format!("/{org}/{project}"), pr))
            .collect();
        json_response(
            StatusCode::OK,
            json!({"value": found, "count": found.len()}),
        )
    });
    shared.record(&method, &uri, &headers, &[], response.status().as_u16());
    response
}

async fn azure_create(
    State(shared): State<Arc<Shared>>,
    UrlPath((org, project, repository)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let response = azure_refusal(&shared, &repository, &query, &headers)
        .unwrap_or_else(|| azure_create_checked(&shared, &format!("/{org}/{project}"), &body));
    shared.record(&method, &uri, &headers, &body, response.status().as_u16());
    response
}

fn azure_create_checked(shared: &Shared, base: &str, body: &[u8]) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |key: &str| request[key].as_str().unwrap_or_default().to_owned();
    let (source, target) = (text("sourceRefName"), text("targetRefName"));
    let description = text("description");
    if description.chars().count() > 4000 {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "The description is too long: 4000 characters at most.", "typeKey": "InvalidArgumentValueException"}),
        );
    }
    let branch = source.strip_prefix("refs/heads/").unwrap_or_default();
    if !shared.branch_exists(branch) {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "TF401398: The pull request cannot be activated because the source and/or the target branch no longer exists, or the requested refs are not branches", "typeKey": "InvalidArgumentValueException"}),
        );
    }
    let mut pull_requests = shared.pull_requests.lock().unwrap();
    if pull_requests
        .iter()
        .any(|pr| pr.source == source && pr.target == target)
    {
        return json_response(
            StatusCode::CONFLICT,
            json!({"$id": "1", "innerException": null, "message": "TF401179: An active pull request for the source and target branch already exists.", "typeName": "Microsoft.TeamFoundation.Git.Server.GitPullRequestExistsException, Microsoft.TeamFoundation.Git.Server", "typeKey": "GitPullRequestExistsException", "errorCode": 0, "eventId": 3000}),
        );
    }
    let pr = FakePullRequest {
        id: 100 + pull_requests.len() as u64 + 1,
        source,
        target,
        title: text("title"),
        description,
        draft: request["isDraft"].as_bool().unwrap_or(false),
        state: FakeState::Open,
    };
    pull_requests.push(pr.clone());
    json_response(StatusCode::CREATED, azure_pull_request(base, &pr))
}

async fn azure_update(
    State(shared): State<Arc<Shared>>,
    UrlPath((org, project, repository, id)): UrlPath<(String, String, String, u64)>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let response = azure_refusal(&shared, &repository, &query, &headers).unwrap_or_else(|| {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut pull_requests = shared.pull_requests.lock().unwrap();
        match pull_requests.iter_mut().find(|pr| pr.id == id) {
            None => json_response(
                StatusCode::NOT_FOUND,
                json!({"message": format!("TF401180: The requested pull request was not found. {id}")}),
            ),
            Some(pr) => {
                if let Some(title) = request["title"].as_str() {
                    pr.title = title.to_owned();
                }
                if let Some(description) = request["description"].as_str() {
                    pr.description = description.to_owned();
                }
                json_response(StatusCode::OK, azure_pull_request(&format!("/{org}/{project}"), pr))
            }
        }
    });
    shared.record(&method, &uri, &headers, &body, response.status().as_u16());
    response
}

async fn azure_get(
    State(shared): State<Arc<Shared>>,
    UrlPath((org, project, repository, id)): UrlPath<(String, String, String, u64)>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    // The repository by name reads as by id.
    let repository = if repository == REPOSITORY_NAME {
        REPOSITORY_ID
    } else {
        &repository
    };
    let response = azure_refusal(&shared, repository, &query, &headers).unwrap_or_else(|| {
        let pull_requests = shared.pull_requests.lock().unwrap();
        match pull_requests.iter().find(|pr| pr.id == id) {
            None => json_response(
                StatusCode::NOT_FOUND,
                json!({"message": format!("TF401180: The requested pull request was not found. {id}")}),
            ),
            Some(pr) => json_response(
                StatusCode::OK,
                azure_pull_request(&format!("/{org}/{project}"), pr),
            ),
        }
    });
    shared.record(&method, &uri, &headers, &[], response.status().as_u16());
    response
}

// --- GitHub ------------------------------------------------------------------------------

fn github_refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    if header(headers, "user-agent").is_none() {
        return Some(json_response(
            StatusCode::FORBIDDEN,
            json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header."}),
        ));
    }
    if !shared.api_credentials_ok(headers) {
        return Some(json_response(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
        ));
    }
    if let Some(limited) = rate_limited(shared) {
        return Some(limited);
    }
    if header(headers, "accept").as_deref() != Some("application/vnd.github+json") {
        return Some(json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"message": "Unsupported 'Accept' header"}),
        ));
    }
    shared.deny_pull_requests.load(Ordering::SeqCst).then(|| {
        json_response(
            StatusCode::FORBIDDEN,
            json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request", "status": "403"}),
        )
    })
}

fn github_pull_request(owner: &str, repo: &str, pr: &FakePullRequest) -> Value {
    json!({
        "number": pr.id,
        "state": if pr.state == FakeState::Open { "open" } else { "closed" },
        "merged": pr.state == FakeState::Merged,
        "html_url": format!("https://github.com/{owner}/{repo}/pull/{}", pr.id),
        "title": pr.title,
        "body": pr.description,
        "draft": pr.draft,
        "head": {"ref": pr.source, "label": format!("{owner}:{}", pr.source)},
        "base": {"ref": pr.target},
    })
}

async fn github_list(
    State(shared): State<Arc<Shared>>,
    UrlPath((owner, repo)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let response = github_refusal(&shared, &headers).unwrap_or_else(|| {
        let head = query_value(&query, "head");
        let base = query_value(&query, "base");
        let found: Vec<Value> = shared
            .pull_requests
            .lock()
            .unwrap()
            .iter()
            .filter(|pr| {
                head.as_ref()
                    .is_none_or(|h| *h == format!("{owner}:{}", pr.source))
            })
            .filter(|pr| base.as_ref().is_none_or(|b| *b == pr.target))
            .map(|pr| github_pull_request(&owner, &repo, pr))
            .collect();
        json_response(StatusCode::OK, Value::Array(found))
    });
    shared.record(&method, &uri, &headers, &[], response.status().as_u16());
    response
}

async fn github_create(
    State(shared): State<Arc<Shared>>,
    UrlPath((owner, repo)): UrlPath<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = github_refusal(&shared, &headers).unwrap_or_else(|| {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = |key: &str| request[key].as_str().unwrap_or_default().to_owned();
        let (head, base) = (text("head"), text("base"));
        let mut pull_requests = shared.pull_requests.lock().unwrap();
        if !shared.branch_exists(&head) {
            json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}], "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request", "status": "422"}),
            )
        } else if pull_requests.iter().any(|pr| pr.source == head && pr.target == base) {
            json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {owner}:{head}.")}], "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request", "status": "422"}),
            )
        } else {
            let pr = FakePullRequest {
                id: pull_requests.len() as u64 + 1,
                source: head,
                target: base,
                title: text("title"),
                description: text("body"),
                draft: request["draft"].as_bool().unwrap_or(false),
                state: FakeState::Open,
            };
            pull_requests.push(pr.clone());
            json_response(StatusCode::CREATED, github_pull_request(&owner, &repo, &pr))
        }
    });
    shared.record(&method, &uri, &headers, &body, response.status().as_u16());
    response
}

async fn github_update(
    State(shared): State<Arc<Shared>>,
    UrlPath((owner, repo, number)): UrlPath<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = github_refusal(&shared, &headers).unwrap_or_else(|| {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut pull_requests = shared.pull_requests.lock().unwrap();
        match pull_requests.iter_mut().find(|pr| pr.id == number) {
            None => json_response(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
            Some(pr) => {
                if let Some(title) = request["title"].as_str() {
                    pr.title = title.to_owned();
                }
                if let Some(body) = request["body"].as_str() {
                    pr.description = body.to_owned();
                }
                json_response(StatusCode::OK, github_pull_request(&owner, &repo, pr))
            }
        }
    });
    shared.record(&method, &uri, &headers, &body, response.status().as_u16());
    response
}

async fn github_get(
    State(shared): State<Arc<Shared>>,
    UrlPath((owner, repo, number)): UrlPath<(String, String, u64)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let response = github_refusal(&shared, &headers).unwrap_or_else(|| {
        let pull_requests = shared.pull_requests.lock().unwrap();
        match pull_requests.iter().find(|pr| pr.id == number) {
            None => json_response(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
            Some(pr) => json_response(StatusCode::OK, github_pull_request(&owner, &repo, pr)),
        }
    });
    shared.record(&method, &uri, &headers, &[], response.status().as_u16());
    response
}
