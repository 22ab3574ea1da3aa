//! `agent-orch worker`: an agent of the fleet. It registers with the hub, heartbeats, claims
//! ready tasks one at a time, runs each task's workflow in its environment with its vars (the
//! same run session, `crate::session`, as `agent-orch run`), streams step progress, records
//! evidence (junit, patches, the commit it ran on) and completes the task, gives it back on
//! failure, or stops it when an operator cancels it. A run whose `pull_request` step opened a
//! pull request records it, sets the task's branch and `pr_url`, and completes into `review`:
//! the task is `done` when the pull request merges.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::azure::{RunSecrets, SecretsError, fetch_service_secret};
use crate::core::agent_env::AgentEnv;
use crate::core::error_chain::error_chain;
use crate::core::secret::Secret;
use crate::engine::events::{Event, RunOutcome};
use crate::engine::interrupt::Interrupts;
use crate::engine::settings::RunSettings;
use crate::hub::client::{ClientError, HubClient, TokenRenewal};
use crate::hub::error::HubError;
use crate::hub::model::{AssignmentStatus, Claim, EvidenceKind};
use crate::hub::store::NewEvidence;
use crate::redact::Redactor;
use crate::report::Reporter;
use crate::session::{self, Output, RunHost, RunOptions, SessionEnd, Stop};

#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub hub: String,
    pub token: Secret,
    pub id: String,
    pub host: String,
    pub capabilities: Vec<String>,
    /// The repository task workflows are relative to; runs leave artifacts under it.
    pub workdir: PathBuf,
    pub heartbeat_interval: Duration,
    pub poll_interval: Duration,
    pub max_tasks: Option<u32>,
    pub exit_when_idle: bool,
    /// Where task workflows' `secrets:` are read with: the environment's Azure sign-in
    /// (workload identity, App Service's identity, the Azure CLI) and pipeline variables.
    pub environment: AgentEnv,
    /// The machine is an Azure VM: its managed identity (IMDS) may sign in too.
    pub managed_identity: bool,
    /// Where `token` came from, if from Key Vault: read again when the hub refuses the token.
    pub token_vault: Option<TokenVault>,
}

/// A Key Vault secret that holds a worker's hub token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenVault {
    pub vault: String,
    pub secret: String,
}

impl TokenVault {
    /// The token the secret holds now, without surrounding whitespace.
    pub async fn read(
        &self,
        environment: &AgentEnv,
        managed_identity: bool,
    ) -> Result<Secret, SecretsError> {
        let secret =
            fetch_service_secret(&self.vault, &self.secret, environment, managed_identity).await?;
        Ok(Secret::new(secret.expose().trim()))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    pub completed: u32,
    pub failed: u32,
    /// Tasks the hub took back while this worker ran them (it heard nothing for too long).
    pub lost: u32,
    /// Assignments an operator cancelled while this worker ran them.
    pub cancelled: u32,
}

impl WorkerSummary {
    fn tasks(&self) -> u32 {
        self.completed + self.failed + self.lost + self.cancelled
    }
}

/// The assignment being worked on and the token that stops its run: the heartbeat cancels it
/// when the hub says an operator asked to.
#[derive(Clone, Debug, Default)]
struct Running(Arc<Mutex<Option<(i64, CancellationToken)>>>);

impl Running {
    /// `assignment` runs now; the token is cancelled when an operator cancels it.
    fn start(&self, assignment: i64) -> CancellationToken {
        let token = CancellationToken::new();
        *self.lock() = Some((assignment, token.clone()));
        token
    }

    fn end(&self) {
        *self.lock() = None;
    }

    fn cancel_if_listed(&self, assignments: &[i64]) {
        if let Some((id, token)) = self.lock().as_ref()
            && assignments.contains(id)
        {
            token.cancel();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(i64, CancellationToken)>> {
        // The value is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Notes sent to the hub are bounded: a failure reason is a summary, not a log.
const MAX_NOTE: usize = 2000;

/// Works until `stop` is cancelled, `max_tasks` are done, or (with `exit_when_idle`) nothing
/// is ready.
pub async fn run_worker(
    options: &WorkerOptions,
    stop: CancellationToken,
) -> Result<WorkerSummary, HubError> {
    let mut client = HubClient::new(
        &options.hub,
        options.token.expose(),
        Duration::from_secs(10),
    )
    .map_err(|err| HubError::Worker(err.to_string()))?;
    if let Some(source) = &options.token_vault {
        client = client.with_token_renewal(renew_from_vault(source, options));
    }
    // Registration must work before anything else: a wrong URL or token fails fast.
    client
        .heartbeat(&options.id, &options.host, &options.capabilities)
        .await
        .map_err(|err| HubError::Worker(err.to_string()))?;
    let running = Running::default();
    let heartbeat = tokio::spawn(heartbeat_loop(
        client.clone(),
        options.clone(),
        running.clone(),
        stop.clone(),
    ));
    let mut summary = WorkerSummary::default();
    let result = loop {
        if stop.is_cancelled() || options.max_tasks.is_some_and(|max| summary.tasks() >= max) {
            break Ok(summary);
        }
        let claim = match until_answered(&stop, async || next_task(&client, options).await).await {
            Ok(claim) => claim,
            Err(_) if stop.is_cancelled() => break Ok(summary),
            Err(err) => break Err(HubError::Worker(err.to_string())),
        };
        let Some(claim) = claim else {
            if options.exit_when_idle {
                break Ok(summary);
            }
            tokio::select! {
                () = tokio::time::sleep(options.poll_interval) => continue,
                () = stop.cancelled() => break Ok(summary),
            }
        };
        let cancelled = running.start(claim.assignment.id);
        let end = work(&client, options, &claim, &stop, cancelled).await;
        running.end();
        match end {
            TaskEnd::Completed => summary.completed += 1,
            TaskEnd::Failed => summary.failed += 1,
            TaskEnd::Lost => summary.lost += 1,
            TaskEnd::Cancelled => summary.cancelled += 1,
        }
    };
    heartbeat.abort();
    result
}

/// Reads the token from its Key Vault secret again, as at start: the hub refusing it usually
/// means it was rotated.
fn renew_from_vault(source: &TokenVault, options: &WorkerOptions) -> TokenRenewal {
    let source = source.clone();
    let environment = options.environment.clone();
    let managed_identity = options.managed_identity;
    Arc::new(move || {
        let (source, environment) = (source.clone(), environment.clone());
        Box::pin(async move {
            notice(&format!(
                "the hub refused the token; reading secret `{}` of key vault `{}` again",
                source.secret, source.vault
            ));
            source
                .read(&environment, managed_identity)
                .await
                .map_err(|err| error_chain(&err))
        })
    })
}

/// What to work on next: an active assignment of this agent's that nothing here runs (a claim
/// whose answer was lost when the hub went down, or one from before this worker restarted;
/// it is still ours, so it is run), else a fresh claim.
async fn next_task(
    client: &HubClient,
    options: &WorkerOptions,
) -> Result<Option<Claim>, ClientError> {
    let orphaned = client.active_assignments(&options.id).await?;
    if let Some(assignment) = orphaned.into_iter().next() {
        let task = client.task(assignment.task_id).await?;
        return Ok(Some(Claim { assignment, task }));
    }
    client.claim(&options.id).await
}

/// The longest wait between two tries while the hub is away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Calls the hub until it answers: while it is unreachable or failing (restarting, say), tries
/// again with a growing pause, until `stop`. Any other answer, success or refusal, is returned.
async fn until_answered<T>(
    stop: &CancellationToken,
    mut call: impl AsyncFnMut() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let mut pause = Duration::from_millis(100);
    let mut outage = false;
    loop {
        match call().await {
            Err(err) if err.is_transient() && !stop.is_cancelled() => {
                if !outage {
                    outage = true;
                    notice(&format!("{err}; trying again until it answers"));
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => return Err(err),
                }
                pause = (pause * 2).min(MAX_BACKOFF);
            }
            answer => {
                if outage {
                    notice("the hub answers again");
                }
                return answer;
            }
        }
    }
}

/// A line for whoever watches the worker (its stderr).
fn notice(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "worker: {line}");
}

async fn heartbeat_loop(
    client: HubClient,
    options: WorkerOptions,
    running: Running,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(options.heartbeat_interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                // A missed beat is retried at the next tick; the hub's timeout spans several.
                if let Ok(answer) = client.heartbeat(&options.id, &options.host, &options.capabilities).await {
                    running.cancel_if_listed(&answer.cancel_assignments);
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

enum TaskEnd {
    Completed,
    Failed,
    Lost,
    Cancelled,
}

async fn work(
    client: &HubClient,
    options: &WorkerOptions,
    claim: &Claim,
    stop: &CancellationToken,
    cancelled: CancellationToken,
) -> TaskEnd {
    let assignment = claim.assignment.id;
    if claim.assignment.cancel_requested {
        cancelled.cancel();
    }
    // Notes reach the hub and its dashboard: no secret of the run goes with them.
    let give_back = |reason: String, redactor: &Redactor| {
        let note = bounded(&redactor.redact(&reason));
        let cancelled = cancelled.clone();
        async move {
            let ending = Ending {
                status: AssignmentStatus::Failed,
                progress: 0,
                review: false,
            };
            end_assignment(client, stop, assignment, &cancelled, ending, &note).await
        }
    };
    let workflow_path = match task_workflow(&options.workdir, claim.task.workflow.as_deref()) {
        Ok(path) => path,
        Err(reason) => {
            return give_back(reason, &RunSecrets::default().redactor()).await;
        }
    };
    let run_id = format!("task-{}-assignment-{assignment}", claim.task.id);
    let run = RunOptions {
        environment: claim.task.environment.clone(),
        vars: claim.task.vars.clone().into_iter().collect(),
        artifacts: Some(
            options
                .workdir
                .join(".agent-orch")
                .join("runs")
                .join(&run_id),
        ),
        run_id: Some(run_id),
        // Unattended: nothing a person must approve goes through, and nobody watches a terminal.
        echo: false,
        ..RunOptions::new(workflow_path)
    };
    let host = RunHost {
        managed_identity: options.managed_identity,
        known_secrets: vec![&options.token],
        ..RunHost::new(&options.environment, Output::ReportsOnly)
    };
    let (progress, mut updates) = mpsc::unbounded_channel::<(i64, String)>();
    let opened = Arc::new(Mutex::new(None));
    let interrupts = Interrupts::default();
    // Progress goes to the hub as the run goes; a 409 means the hub re-queued the task (this
    // worker looked dead), so the run stops: someone else owns the task now.
    let lost = CancellationToken::new();
    let forwarder = {
        let client = client.clone();
        let interrupts = interrupts.clone();
        let lost = lost.clone();
        let stop = stop.clone();
        let cancelled = cancelled.clone();
        tokio::spawn(async move {
            let mut stopping = false;
            loop {
                tokio::select! {
                    update = updates.recv() => {
                        let Some((percent, note)) = update else { return };
                        match client.report(assignment, percent, AssignmentStatus::Active, &note).await {
                            Ok(answer) if answer.cancel_requested => cancelled.cancel(),
                            Err(err) if err.is_conflict() => {
                                lost.cancel();
                                interrupts.run.cancel();
                                return;
                            }
                            _ => {}
                        }
                    }
                    // Once, as Ctrl-C would: the run rolls back, winds down and its last
                    // updates still go out.
                    () = stop.cancelled(), if !stopping => {
                        stopping = true;
                        interrupts.run.cancel();
                    }
                    () = cancelled.cancelled(), if !stopping => {
                        stopping = true;
                        interrupts.run.cancel();
                    }
                }
            }
        })
    };
    let end = session::run_async(&run, &host, Stop::Given(interrupts), |reporters| {
        reporters.push(ProgressReporter {
            updates: progress,
            last: -1,
        });
        reporters.push(PullRequestWatcher(opened.clone()));
    })
    .await;
    // The session dropped its reporters, so the channel is closed (or was never opened) and
    // every queued update has been sent once the forwarder ends.
    let _ = forwarder.await;
    let SessionEnd {
        summary,
        settings,
        redactor,
    } = match end {
        Ok(end) => end,
        Err(failure) => {
            let reason = error_chain(&failure.error);
            return give_back(reason, &failure.redactor).await;
        }
    };
    if lost.is_cancelled() {
        return TaskEnd::Lost;
    }
    record_evidence(client, options, claim, &settings, stop).await;
    let opened = opened
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let succeeded = matches!(
        summary.outcome,
        RunOutcome::Succeeded | RunOutcome::SucceededWithIssues
    );
    let review = match opened.filter(|_| succeeded) {
        Some(pull_request) => {
            record_pull_request(client, options, claim, &pull_request, stop).await
        }
        None => false,
    };
    let (status, progress, note) = match summary.outcome {
        RunOutcome::Succeeded | RunOutcome::SucceededWithIssues => (
            AssignmentStatus::Completed,
            100,
            format!("workflow succeeded in {} iteration(s)", summary.iterations),
        ),
        RunOutcome::Failed | RunOutcome::Interrupted => (
            AssignmentStatus::Failed,
            0,
            format!("workflow did not succeed: {}", summary.reason),
        ),
    };
    let note = bounded(&redactor.redact(&note));
    let ending = Ending {
        status,
        progress,
        review,
    };
    end_assignment(client, stop, assignment, &cancelled, ending, &note).await
}

/// How a worker ends an assignment it ran to its end.
struct Ending {
    status: AssignmentStatus,
    progress: i64,
    /// A completion whose task waits in `review` for its pull request to merge.
    review: bool,
}

/// Records the pull request the run opened as evidence and as the task's branch and `pr_url`.
/// True once the hub has the `pr_url`: only then can the task wait in review (and the merge
/// queue find it); else the task completes as `done`, as a run without a pull request does.
async fn record_pull_request(
    client: &HubClient,
    options: &WorkerOptions,
    claim: &Claim,
    pull_request: &OpenedPullRequest,
    stop: &CancellationToken,
) -> bool {
    let evidence = NewEvidence {
        agent_id: Some(options.id.clone()),
        detail: format!(
            "pull request #{} from `{}`",
            pull_request.id, pull_request.branch
        ),
        idempotency_key: Some(evidence_key(
            claim.assignment.id,
            EvidenceKind::Pr,
            &pull_request.url,
        )),
        ..NewEvidence::new(claim.task.id, EvidenceKind::Pr, pull_request.url.clone())
    };
    let record = async || client.record_evidence(&evidence).await;
    let _: Result<_, ClientError> = until_answered(stop, record).await;
    let set = async || {
        client
            .set_git(claim.task.id, &pull_request.branch, &pull_request.url)
            .await
    };
    until_answered(stop, set).await.is_ok()
}

/// Reports how the assignment ended: `cancelled` once an operator asked (whatever the run did),
/// else `status`. A cancel the hub took just before this report (its 409) is answered with
/// `cancelled`; any other conflict means the task is someone else's now.
async fn end_assignment(
    client: &HubClient,
    stop: &CancellationToken,
    assignment: i64,
    cancelled: &CancellationToken,
    ending: Ending,
    note: &str,
) -> TaskEnd {
    let Ending {
        status,
        progress,
        review,
    } = ending;
    let cancel = async || {
        let note = format!("cancelled by an operator; {note}");
        let report = async || {
            client
                .report(assignment, 0, AssignmentStatus::Cancelled, &note)
                .await
        };
        match until_answered(stop, report).await {
            Err(err) if err.is_conflict() => TaskEnd::Lost,
            _ => TaskEnd::Cancelled,
        }
    };
    if cancelled.is_cancelled() {
        return cancel().await;
    }
    let report = async || {
        client
            .report_for(assignment, progress, status, note, review)
            .await
    };
    match until_answered(stop, report).await {
        Err(err) if err.is_conflict() => cancel().await,
        _ if status == AssignmentStatus::Completed => TaskEnd::Completed,
        _ => TaskEnd::Failed,
    }
}

/// The task's workflow inside the worker's repository; the hub cannot point outside it.
fn task_workflow(workdir: &Path, workflow: Option<&str>) -> Result<PathBuf, String> {
    let Some(relative) = workflow else {
        return Err("the task has no workflow to run".to_owned());
    };
    let path = Path::new(relative);
    let escapes = path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(format!(
            "the task's workflow `{relative}` is not a path inside the repository"
        ));
    }
    Ok(workdir.join(path))
}

/// junit.xml, every patch the run applied, and the commit the run started from.
async fn record_evidence(
    client: &HubClient,
    options: &WorkerOptions,
    claim: &Claim,
    settings: &RunSettings,
    stop: &CancellationToken,
) {
    let task = claim.task.id;
    let mut items: Vec<(EvidenceKind, String, String)> = Vec::new();
    let junit = settings.artifacts_dir.join("junit.xml");
    if junit.is_file() {
        items.push((
            EvidenceKind::Junit,
            junit.display().to_string(),
            String::new(),
        ));
    }
    if let Ok(entries) = std::fs::read_dir(settings.artifacts_dir.join("patches")) {
        let mut patches: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        patches.sort();
        for patch in patches {
            items.push((
                EvidenceKind::Patch,
                patch.display().to_string(),
                String::new(),
            ));
        }
    }
    if let Some(commit) = head_commit(&settings.workdir).await {
        items.push((
            EvidenceKind::Commit,
            commit,
            format!("run {}", settings.run_id),
        ));
    }
    for (kind, reference, detail) in items {
        // The same report for the same assignment carries the same key, so a retry after the
        // hub died mid-answer cannot record it twice.
        let evidence = NewEvidence {
            agent_id: Some(options.id.clone()),
            detail,
            idempotency_key: Some(evidence_key(claim.assignment.id, kind, &reference)),
            ..NewEvidence::new(task, kind, reference)
        };
        let record = async || client.record_evidence(&evidence).await;
        // A refusal does not hold up the task's outcome, which is reported either way.
        let _: Result<_, ClientError> = until_answered(stop, record).await;
    }
}

/// `assignment-<id>/<kind>/<sha-256 of the reference>`: short whatever the reference's length.
fn evidence_key(assignment_id: i64, kind: EvidenceKind, reference: &str) -> String {
    let digest = hex::encode(Sha256::digest(reference.as_bytes()));
    format!("assignment-{assignment_id}/{kind}/{digest}")
}

async fn head_commit(repo: &Path) -> Option<String> {
    let output = tokio::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .await
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}

fn bounded(text: &str) -> String {
    if text.len() <= MAX_NOTE {
        return text.to_owned();
    }
    let mut end = MAX_NOTE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Turns engine events into progress for the hub: 10% when the run starts, up to 90% as the
/// steps of an iteration go by (100% is the completion itself).
struct ProgressReporter {
    updates: mpsc::UnboundedSender<(i64, String)>,
    last: i64,
}

impl Reporter for ProgressReporter {
    fn name(&self) -> &str {
        "hub progress"
    }

    fn on_event(&mut self, event: &Event) -> std::io::Result<()> {
        let (percent, note) = match event {
            Event::RunStarted { workflow, .. } => (10, format!("running workflow `{workflow}`")),
            Event::StepStarted {
                iteration,
                step_id,
                index,
                total,
                ..
            } => {
                let done = i64::try_from(index.saturating_sub(1)).unwrap_or(0);
                let total = i64::try_from(*total).unwrap_or(1).max(1);
                (
                    10 + 80 * done / total,
                    format!("iteration {iteration}: step `{step_id}` ({index}/{total})"),
                )
            }
            _ => return Ok(()),
        };
        if percent != self.last {
            self.last = percent;
            // A closed channel means the task is over; nothing left to tell.
            let _ = self.updates.send((percent, note));
        }
        Ok(())
    }
}

/// What the run's `pull_request` step opened (its `id`, `url` and `branch` outputs).
#[derive(Clone, Debug, PartialEq)]
struct OpenedPullRequest {
    id: String,
    url: String,
    branch: String,
}

/// Keeps the pull request a `pull_request` step opened; the last one, should a run open two.
struct PullRequestWatcher(Arc<Mutex<Option<OpenedPullRequest>>>);

impl Reporter for PullRequestWatcher {
    fn name(&self) -> &str {
        "hub pull request"
    }

    fn on_event(&mut self, event: &Event) -> std::io::Result<()> {
        let Event::StepFinished {
            kind: "pull_request",
            outcome,
            ..
        } = event
        else {
            return Ok(());
        };
        // A push without a pull request (`provider: git`) has no `url`: nothing to review.
        let output = |name: &str| outcome.outputs.get(name).cloned();
        if let (Some(url), Some(branch)) = (output("url"), output("branch")) {
            let id = output("id").unwrap_or_default();
            *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(OpenedPullRequest { id, url, branch });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflows_outside_the_repository_are_refused() {
        let root = Path::new("/repo");
        assert_eq!(
            task_workflow(root, Some("workflows/ci.yaml")),
            Ok(PathBuf::from("/repo/workflows/ci.yaml"))
        );
        for bad in ["../x.yaml", "/etc/passwd", "a/../../b.yaml"] {
            assert!(task_workflow(root, Some(bad)).is_err(), "{bad}");
        }
        assert!(task_workflow(root, None).is_err());
    }

    fn finished(kind: &'static str, outputs: &[(&str, &str)]) -> Event {
        let mut outcome = crate::steps::StepOutcome::passed("done");
        for (name, value) in outputs {
            outcome
                .outputs
                .insert((*name).to_owned(), (*value).to_owned());
        }
        Event::StepFinished {
            iteration: 1,
            phase: crate::workflow::model::Phase::OnSuccess,
            step_id: "pr".into(),
            step_name: "pr".into(),
            kind,
            required: true,
            duration: Duration::ZERO,
            outcome: Arc::new(outcome),
        }
    }

    #[test]
    fn only_a_pull_request_steps_url_and_branch_make_a_review() {
        let seen = Arc::new(Mutex::new(None));
        let mut watcher = PullRequestWatcher(seen.clone());
        let pr = [
            ("id", "7"),
            ("url", "https://forge/pr/7"),
            ("branch", "fix-1"),
        ];
        // Another step's outputs, or a push without a pull request, are no review.
        watcher.on_event(&finished("gate", &pr)).unwrap();
        watcher
            .on_event(&finished("pull_request", &[("branch", "fix-1")]))
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), None);
        watcher.on_event(&finished("pull_request", &pr)).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            Some(OpenedPullRequest {
                id: "7".into(),
                url: "https://forge/pr/7".into(),
                branch: "fix-1".into(),
            })
        );
    }

    #[test]
    fn notes_are_bounded_on_a_char_boundary() {
        let long = "é".repeat(MAX_NOTE);
        let note = bounded(&long);
        assert!(note.len() <= MAX_NOTE + '…'.len_utf8());
        assert!(note.ends_with('…'));
    }
}
