//! `pull_request`: the run's fix, shipped as a branch and a pull request.
//!
//! It runs in `on_success:`, once the loop has passed with patches applied. It commits exactly
//! the patched files on top of the checkout's `HEAD` (nothing else the user changed: see
//! `crate::git`), with a message naming the failure fixed and the audit log's head, pushes
//! the commit to `origin` as the branch (default `agent-orch/fix-<build id>` in a pipeline,
//! `agent-orch/fix-<run id>` elsewhere), and opens a pull request, or updates the open one
//! from that branch: a rerun of the fix does not open a second one. The provider `git` only
//! pushes.
//!
//! The description (summary, each patch with the reviewer's verdict, a link to the run) is
//! written whole to `pull-request.md` in the artifacts and cut to the service's limit in the
//! request. Without an applied patch the step passes with nothing to deliver. A 403 from
//! the push or the service fails the step with the permission to grant; the run's outcome and
//! artifacts stay as they are.

mod azure_repos;
mod description;
pub(crate) mod forge_api;
mod github;

use indexmap::IndexMap;

use self::azure_repos::AzureRepos;
use self::github::GitHub;
use super::step_log::StepLog;
use super::{RunState, StepContext, StepOutcome, StepStatus};
use crate::core::agent_env::AgentEnv;
use crate::core::secret::Secret;
use crate::git::{self, GitError};
use crate::workflow::step_config::pull_request::{Provider, PullRequestConfig};
use crate::workflow::template::Template;

/// What the run has to deliver, handed over by the engine when `on_success` runs.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    pub run_id: String,
    pub workflow: String,
    pub environment: Option<String>,
    /// How the run ended, in one line: `all steps passed after 2 iteration(s)`.
    pub summary: String,
    /// The patches still applied, oldest first.
    pub patches: Vec<DeliveredPatch>,
    /// The SHA-256 of `audit.jsonl`'s last line when delivery started.
    pub audit_head: Option<String>,
}

/// One applied patch, as the pull request describes it.
#[derive(Clone, Debug)]
pub struct DeliveredPatch {
    pub iteration: u32,
    /// The failure it was made for: `test: exit code 1`.
    pub fixed: String,
    /// Paths relative to the checkout.
    pub files: Vec<String>,
    /// The unified diff, secrets redacted.
    pub diff: String,
    /// Where the diff is in the artifacts: `patches/iteration-1.diff`.
    pub diff_path: String,
    pub patch_sha256: String,
    /// The reviewer's reason for approving it; `None` when no review step ran.
    pub verdict: Option<String>,
}

impl Delivery {
    /// Every patched path, once, in the order first patched.
    fn files(&self) -> Vec<String> {
        let mut files: Vec<String> = Vec::new();
        for file in self.patches.iter().flat_map(|p| &p.files) {
            if !files.contains(file) {
                files.push(file.clone());
            }
        }
        files
    }

    /// The failure the run fixed: the first patch's.
    fn fixed(&self) -> &str {
        self.patches.first().map_or("", |p| p.fixed.as_str())
    }
}

/// Why the fix could not be delivered, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum PullRequestError {
    #[error("`{name}` is not set: {hint}")]
    MissingVariable {
        name: &'static str,
        hint: &'static str,
    },
    #[error("cannot render `{key}`: {reason}")]
    Render { key: &'static str, reason: String },
    #[error("cannot tell which branch to merge into: set `target:`")]
    NoTarget,
    #[error("cannot tell the GitHub repository: set `GITHUB_REPOSITORY` (owner/name)")]
    NoGitHubRepository,
    #[error("failed to commit the patched files: {0}")]
    Commit(#[source] GitError),
    #[error("push to origin refused (403): {grant}")]
    PushForbidden { grant: &'static str },
    #[error("failed to push the branch: {}", .0.detail)]
    Push(#[source] GitError),
    #[error("{service} refused to {action} (HTTP {status}): {grant}")]
    Forbidden {
        service: &'static str,
        action: &'static str,
        status: u16,
        grant: &'static str,
    },
    #[error(
        "{service} is rate limiting this token: try again to {action} in {}",
        humantime::format_duration(*.wait)
    )]
    RateLimited {
        service: &'static str,
        action: &'static str,
        wait: std::time::Duration,
    },
    #[error("{service} answered HTTP {status} to {action}: {message}")]
    Service {
        service: &'static str,
        action: &'static str,
        status: u16,
        message: String,
    },
    #[error("cannot reach {service} to {action}: {source}")]
    Transport {
        service: &'static str,
        action: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

/// A pull request opened or found and updated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Opened {
    pub(crate) id: u64,
    pub(crate) url: String,
    pub(crate) created: bool,
}

/// What the service is asked to open or update.
pub(crate) struct Request<'a> {
    pub(crate) branch: &'a str,
    pub(crate) target: &'a str,
    pub(crate) title: &'a str,
    /// The whole description; each service cuts it to its own limit.
    pub(crate) description: &'a str,
    pub(crate) draft: bool,
    /// Named in the pointer to the artifacts when the description is cut.
    pub(crate) run_id: &'a str,
}

/// The service that hosts pull requests.
enum Forge {
    AzureRepos(AzureRepos),
    GitHub(GitHub),
    PushOnly,
}

impl Forge {
    fn push_header(&self) -> Option<Secret> {
        match self {
            Forge::AzureRepos(service) => Some(service.push_header()),
            Forge::GitHub(service) => Some(service.push_header()),
            Forge::PushOnly => None,
        }
    }

    /// What to grant when a push is refused.
    fn push_grant(&self) -> &'static str {
        match self {
            Forge::AzureRepos(_) => azure_repos::PUSH_GRANT,
            Forge::GitHub(_) => github::PUSH_GRANT,
            Forge::PushOnly => "allow the credentials git uses to push to `origin`",
        }
    }

    fn run_link(&self, env: &AgentEnv) -> Option<String> {
        match self {
            Forge::AzureRepos(service) => service.run_link(env),
            Forge::GitHub(_) => github::run_link(env),
            Forge::PushOnly => azure_repos::build_link(env).or_else(|| github::run_link(env)),
        }
    }
}

/// For `--dry-run`: where the pull request would go.
pub fn describe(config: &PullRequestConfig, _ctx: &StepContext<'_>) -> String {
    format!(
        "would push the run's patches and open a pull request ({})",
        config.provider
    )
}

/// Delivers what the engine hands over in `on_success` ([`RunState::delivery`]).
pub async fn run(config: &PullRequestConfig, ctx: &StepContext<'_>) -> StepOutcome {
    let delivery = ctx
        .run_state
        .as_deref()
        .and_then(RunState::delivery)
        .cloned()
        .unwrap_or_default();
    let mut log = StepLog::open(&ctx.log_path, ctx.echo);
    let env = AgentEnv::from_process();
    let mut outcome = tokio::select! {
        result = deliver(config, ctx, &delivery, &env, &mut log) => match result {
            Ok(outcome) => outcome,
            Err(err) => StepOutcome::failed(err.to_string()),
        },
        () = ctx.cancel.cancelled() => StepOutcome::new(StepStatus::Cancelled, "cancelled"),
    };
    log.line(&outcome.message);
    outcome.output_tail = log.tail();
    outcome.log_path = Some(ctx.log_path.clone());
    outcome
}

async fn deliver(
    config: &PullRequestConfig,
    ctx: &StepContext<'_>,
    delivery: &Delivery,
    env: &AgentEnv,
    log: &mut StepLog,
) -> Result<StepOutcome, PullRequestError> {
    if delivery.patches.is_empty() {
        return Ok(StepOutcome::passed(
            "nothing to deliver: the run applied no patch",
        ));
    }
    let render = |key: &'static str, template: &Option<Template>| {
        template
            .as_ref()
            .map(|t| ctx.renderer.render(t))
            .transpose()
            .map(|text| text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
            .map_err(|err| PullRequestError::Render {
                key,
                reason: err.reason(),
            })
    };
    let branch = render("branch", &config.branch)?.unwrap_or_else(|| {
        let id = env.var("BUILD_BUILDID").unwrap_or(&ctx.run.run_id);
        format!("agent-orch/fix-{id}")
    });
    let title = render("title", &config.title)?
        .unwrap_or_else(|| format!("agent-orch: fix {}", delivery.fixed()));
    let token = render("token", &config.token)?.map(Secret::new);
    let workdir = &ctx.run.workdir;
    let forge = match config.provider {
        Provider::AzureRepos => Forge::AzureRepos(AzureRepos::from_env(env, token)?),
        Provider::Github => {
            let origin = origin_url(workdir).await;
            Forge::GitHub(GitHub::from_env(env, token, origin.as_deref())?)
        }
        Provider::Git => Forge::PushOnly,
    };
    let target = match render("target", &config.target)? {
        Some(target) => target,
        None => default_target(env, workdir).await.unwrap_or_default(),
    };
    if target.is_empty() && !matches!(forge, Forge::PushOnly) {
        return Err(PullRequestError::NoTarget);
    }

    // Failure messages come from steps' output: the run's secrets stay on the machine.
    let redactor = ctx.redactor;
    let title = redactor.redact(&title).into_owned();
    let text = description::full(delivery, forge.run_link(env).as_deref());
    let text = redactor.redact(&text).into_owned();
    let written = ctx.run.artifacts_dir.join(description::FILE_NAME);
    if let Err(err) = std::fs::write(&written, &text) {
        log.line(&format!(
            "warning: cannot write `{}`: {err}",
            written.display()
        ));
    }

    let files = delivery.files();
    let message = description::commit_message(&title, delivery);
    let message = redactor.redact(&message);
    let commit = git::commit_files(workdir, &files, &message)
        .await
        .map_err(PullRequestError::Commit)?;
    log.line(&format!(
        "committed {} ({} file(s): {}) on {}",
        short(&commit.sha),
        files.len(),
        files.join(", "),
        short(&commit.parent)
    ));
    let header = forge.push_header();
    git::push(workdir, &commit.sha, &branch, header.as_ref())
        .await
        .map_err(|err| {
            if err.stderr.contains("403") {
                PullRequestError::PushForbidden {
                    grant: forge.push_grant(),
                }
            } else {
                PullRequestError::Push(err)
            }
        })?;
    log.line(&format!("pushed `{branch}` to origin"));

    let mut outputs = IndexMap::new();
    outputs.insert("branch".to_owned(), branch.clone());
    outputs.insert("commit".to_owned(), commit.sha.clone());
    let request = Request {
        branch: &branch,
        target: &target,
        title: &title,
        description: &text,
        draft: config.draft,
        run_id: &ctx.run.run_id,
    };
    let opened = match &forge {
        Forge::PushOnly => None,
        Forge::AzureRepos(service) => Some(service.open_or_update(&request).await?),
        Forge::GitHub(service) => Some(service.open_or_update(&request).await?),
    };
    let message = match &opened {
        None => format!("pushed branch `{branch}` ({})", short(&commit.sha)),
        Some(pr) => {
            outputs.insert("id".to_owned(), pr.id.to_string());
            outputs.insert("url".to_owned(), pr.url.clone());
            let verb = if pr.created { "opened" } else { "updated" };
            format!(
                "{verb} pull request #{} from `{branch}` ({}): {}",
                pr.id,
                short(&commit.sha),
                pr.url
            )
        }
    };
    let mut outcome = StepOutcome::passed(message);
    outcome.outputs = outputs;
    Ok(outcome)
}

/// `origin`'s URL, to read the GitHub repository from when `GITHUB_REPOSITORY` is not set.
async fn origin_url(workdir: &std::path::Path) -> Option<String> {
    git::remote_url(workdir, "origin").await.ok()
}

/// The branch being built (a pull request build: its source branch), else the checkout's.
async fn default_target(env: &AgentEnv, workdir: &std::path::Path) -> Option<String> {
    let from_pipeline = env
        .var("SYSTEM_PULLREQUEST_SOURCEBRANCH")
        .or_else(|| env.var("BUILD_SOURCEBRANCH"))
        .and_then(|branch| branch.strip_prefix("refs/heads/"))
        .or_else(|| env.var("GITHUB_HEAD_REF"))
        .or_else(|| {
            (env.var("GITHUB_REF_TYPE") == Some("branch"))
                .then(|| env.var("GITHUB_REF_NAME"))
                .flatten()
        });
    match from_pipeline {
        Some(branch) => Some(branch.to_owned()),
        None => git::current_branch(workdir).await.ok().flatten(),
    }
}

/// The first 12 hex digits of a commit, as people read them.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_target_is_the_branch_being_built() {
        let outside_git = tempfile::tempdir().expect("temp dir");
        let target = |vars: &[(&str, &str)]| {
            let env = AgentEnv::from_vars(vars.iter().copied());
            let dir = outside_git.path().to_owned();
            async move { default_target(&env, &dir).await }
        };
        assert_eq!(
            target(&[("BUILD_SOURCEBRANCH", "refs/heads/release/2.1")])
                .await
                .as_deref(),
            Some("release/2.1")
        );
        // A pull request build: the fix goes to the pull request's branch.
        assert_eq!(
            target(&[
                ("BUILD_SOURCEBRANCH", "refs/pull/12/merge"),
                (
                    "SYSTEM_PULLREQUEST_SOURCEBRANCH",
                    "refs/heads/feature/login"
                ),
            ])
            .await
            .as_deref(),
            Some("feature/login")
        );
        assert_eq!(
            target(&[("GITHUB_REF_TYPE", "tag"), ("GITHUB_REF_NAME", "v1.0")]).await,
            None,
            "a tag is no branch to merge into"
        );
        assert_eq!(
            target(&[("GITHUB_HEAD_REF", "fix/typo")]).await.as_deref(),
            Some("fix/typo")
        );
    }
}
