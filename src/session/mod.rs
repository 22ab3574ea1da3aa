//! One run of a workflow, the way `agent-orch run`, `task`, `demo` and a hub worker all do it:
//! load → settings → approval → secrets → reporters → engine → finish → exit status.
//!
//! Each of them is a thin adapter: it turns its own inputs (flags, a pipeline task's inputs, a
//! hub task) into [`RunOptions`] (what to run) and a [`RunHost`] (where: how to sign in to
//! Azure, where output goes, which secrets are already known), then calls [`run`] (a command:
//! its own runtime, signals and exit status) or [`run_async`] (a hub worker: its own
//! interrupts and an extra reporter).

mod announce;
mod deploy_approval;
mod settings;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ado::pipeline_context::PipelineContext;
use crate::ado::service_connection::{OidcSettings, ServiceConnection};
use crate::azure::credential::CredentialSources;
use crate::azure::sign_in::AzureSignIn;
use crate::azure::transport::OVERRIDE_ENV;
use crate::azure::{RunSecrets, SecretsRequest, fetch_workflow_secrets};
use crate::core::agent_env::AgentEnv;
use crate::core::secret::Secret;
use crate::engine::events::RunOutcome;
use crate::engine::interrupt::Interrupts;
use crate::engine::run_loop::RunSummary;
use crate::engine::settings::RunSettings;
use crate::error::{Error, ExitStatus};
use crate::llm::TapeMode;
use crate::redact::Redactor;
use crate::report::console::Console;
use crate::report::pipeline::{PipelineConsole, StepPositions};
use crate::report::warning::warn;
use crate::report::{Reporter, Reporters};
use crate::workflow::{self, LoadOptions, Workflow};
use crate::workflow_run::run_workflow;

use announce::announce_secrets;

/// What to run, and how: `run`'s flags, a pipeline task's inputs, a hub task.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The workflow file.
    pub workflow: PathBuf,
    /// The environment to run in (`--env`).
    pub environment: Option<String>,
    /// `--var KEY=VALUE`, in order: a later one wins.
    pub vars: Vec<(String, String)>,
    /// Folder for reports and logs; by default `.agent-orch/runs/RUN_ID`.
    pub artifacts: Option<PathBuf>,
    /// The run's id; by default a new, time-sortable one.
    pub run_id: Option<String>,
    /// Overrides `safety.max_iterations`.
    pub max_iterations: Option<u32>,
    /// Render and report every step of one iteration without running anything.
    pub dry_run: bool,
    /// Stream step output to the terminal.
    pub echo: bool,
    /// A person approved patches that match `safety.require_confirmation` (`--approve`).
    pub approve: bool,
    /// A person approved deploying to a `require_approval` environment (`--approve-deploy`).
    pub approve_deploy: bool,
    /// Whether LLM exchanges go live, are recorded or replayed.
    pub tape: TapeMode,
}

impl RunOptions {
    /// A live run of `workflow` in no environment, with no variables and nothing approved.
    pub fn new(workflow: impl Into<PathBuf>) -> Self {
        RunOptions {
            workflow: workflow.into(),
            environment: None,
            vars: Vec::new(),
            artifacts: None,
            run_id: None,
            max_iterations: None,
            dry_run: false,
            echo: true,
            approve: false,
            approve_deploy: false,
            tape: TapeMode::Live,
        }
    }
}

/// Where a run's output goes besides its reports in the artifacts folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The terminal view on stderr.
    Terminal(anstream::ColorChoice),
    /// Azure Pipelines logging commands on stdout, every secret announced first.
    Pipeline,
    /// Nowhere else (a hub worker: its progress goes to the hub).
    ReportsOnly,
}

/// Where a run happens: how it signs in to Azure, where its output goes, what it already knows.
#[derive(Clone, Debug)]
pub struct RunHost<'a> {
    pub agent: &'a AgentEnv,
    /// The pipeline task's service connection, to sign in to Azure with.
    pub connection: Option<&'a ServiceConnection>,
    pub oidc: Option<&'a OidcSettings>,
    /// The machine is an Azure VM: its managed identity (IMDS) may sign in.
    pub managed_identity: bool,
    /// A vault that replaces the workflow's `secrets.vault` (the task's `keyVaultName`).
    pub vault: Option<&'a str>,
    pub output: Output,
    /// Whether an invalid workflow's diagnostics get colours.
    pub color: bool,
    /// Whether a deploy that needs approval may be asked about on a terminal; an unattended
    /// run (a hub worker) needs `approve_deploy` instead.
    pub may_ask: bool,
    /// Secrets from the environment (tokens, connection secrets): masked in every report and
    /// note, and in a pipeline announced before anything else is printed.
    pub known_secrets: Vec<&'a Secret>,
}

impl<'a> RunHost<'a> {
    /// A host that signs in as the machine can, with nothing known beforehand.
    pub fn new(agent: &'a AgentEnv, output: Output) -> Self {
        RunHost {
            agent,
            connection: None,
            oidc: None,
            managed_identity: false,
            vault: None,
            output,
            color: false,
            may_ask: matches!(output, Output::Terminal(_)),
            known_secrets: Vec::new(),
        }
    }

    fn in_pipeline(&self) -> bool {
        self.output == Output::Pipeline
    }

    /// The one sign-in policy of every run: the service connection when there is one, else
    /// workload identity, App Service's managed identity, the VM's managed identity (IMDS,
    /// when told so or on a pipeline agent) and the Azure CLI.
    pub fn sign_in(&self) -> AzureSignIn {
        let agent = self.agent;
        let sources = CredentialSources {
            connection: self.connection,
            oidc: self.oidc,
            ..CredentialSources::from_env(agent, self.managed_identity || agent.in_pipeline())
        };
        AzureSignIn::new(sources, agent.var(OVERRIDE_ENV))
    }
}

/// How a run learns it must stop.
#[derive(Clone, Debug)]
pub enum Stop {
    /// Ctrl-C, SIGTERM and SIGHUP (a command).
    Signals,
    /// Whoever holds these (a hub worker: its own shutdown, the hub's cancel).
    Given(Interrupts),
}

/// A run that went to its end, whatever its outcome.
#[derive(Clone, Debug)]
pub struct SessionEnd {
    pub summary: RunSummary,
    pub settings: RunSettings,
    /// Knows every secret of the run: for what is said about it elsewhere (a hub note).
    pub redactor: Redactor,
}

impl SessionEnd {
    pub fn exit_status(&self) -> ExitStatus {
        match self.summary.outcome {
            RunOutcome::Succeeded | RunOutcome::SucceededWithIssues => ExitStatus::Success,
            RunOutcome::Failed => ExitStatus::RunFailed,
            RunOutcome::Interrupted => ExitStatus::Interrupted,
        }
    }
}

/// Why a run did not start; no step ran.
#[derive(Debug)]
pub struct SessionFailure {
    pub error: Error,
    /// Knows every secret the host knew or the session fetched before the failure.
    pub redactor: Redactor,
}

/// A run as a command does it: its own runtime, stopped by signals, ending in an exit status.
pub fn run(options: &RunOptions, host: &RunHost<'_>) -> Result<ExitStatus, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let end = runtime.block_on(run_async(options, host, Stop::Signals, |_| {}));
    // A step that ignored cancellation must not keep the process alive after the reports.
    runtime.shutdown_timeout(Duration::from_secs(2));
    end.map(|end| end.exit_status())
        .map_err(|failure| failure.error)
}

/// A run inside a runtime that is already going. `add_reporters` adds to the run's reporters
/// (a hub worker's progress); they are finished and dropped before this returns.
pub async fn run_async(
    options: &RunOptions,
    host: &RunHost<'_>,
    stop: Stop,
    add_reporters: impl FnOnce(&mut Reporters),
) -> Result<SessionEnd, SessionFailure> {
    let mut redactor = None;
    match run_session(options, host, stop, add_reporters, &mut redactor).await {
        Ok(end) => Ok(end),
        Err(error) => Err(SessionFailure {
            error,
            redactor: redactor.unwrap_or_else(|| known_secrets(host).redactor()),
        }),
    }
}

async fn run_session(
    options: &RunOptions,
    host: &RunHost<'_>,
    stop: Stop,
    add_reporters: impl FnOnce(&mut Reporters),
    redactor: &mut Option<Redactor>,
) -> Result<SessionEnd, Error> {
    let pipeline = host.in_pipeline();
    if pipeline {
        announce_secrets(host.known_secrets.iter().map(|secret| secret.expose()))?;
    }
    let load = LoadOptions {
        environment: options.environment.clone(),
        vars: options.vars.clone(),
        every_environment: false,
    };
    let workflow = load_workflow(&options.workflow, &load, host.color)?;
    // Before anything of the run, secrets included: a refused deploy leaves no trace.
    deploy_approval::require(&workflow, options, host.agent, host.may_ask)?;
    let settings = RunSettings::resolve(options, &workflow);
    let azure = host.sign_in();
    // Every secret first: a run that cannot have them must not start. A dry run needs none
    // (it shows placeholders), so it works offline, in a pull request's build.
    let secrets = if settings.dry_run {
        RunSecrets::default()
    } else {
        fetch_secrets(host, &workflow, &azure).await?
    }
    .mask_also(host.known_secrets.iter().map(|secret| secret.expose()));
    let run_redactor = secrets.redactor();
    *redactor = Some(run_redactor.clone());
    if pipeline {
        announce_secrets(secrets.values().iter().map(String::as_str))?;
    }
    std::fs::create_dir_all(&settings.artifacts_dir).map_err(|source| Error::Artifacts {
        path: settings.artifacts_dir.clone(),
        source,
    })?;
    let interrupts = match stop {
        Stop::Signals => Interrupts::listen().map_err(Error::Signals)?,
        Stop::Given(interrupts) => interrupts,
    };
    let console = match host.output {
        Output::Terminal(choice) => Some(Console::stderr(choice)),
        Output::Pipeline | Output::ReportsOnly => None,
    };
    let mut reporters = Reporters::for_run(&settings.artifacts_dir, console).map_err(|source| {
        Error::Artifacts {
            path: settings.artifacts_dir.clone(),
            source,
        }
    })?;
    add_reporters(&mut reporters);
    let pipeline_context = PipelineContext::read(host.agent);
    if pipeline {
        let positions =
            StepPositions::of(&workflow).relative_to(pipeline_context.sources_directory.as_deref());
        // Last, so its uploads at `finish` find every other report written.
        reporters.push(PipelineConsole::stdout(positions));
    }
    let summary = run_workflow(
        &workflow,
        &settings,
        &secrets,
        &pipeline_context,
        &azure,
        &mut reporters,
        interrupts,
    )
    .await
    .map_err(Error::RunStart)?;
    if let Err(err) = reporters.finish() {
        // The run's outcome stands; a report that could not be written is said, not fatal.
        report_warning(&err);
    }
    if let Some(head) = reporters.audit_head() {
        // Recorded outside the artifacts (the console, the pipeline log), the head makes the
        // whole audit file tamper-evident: see `agent-orch audit verify --head`.
        report_audit_head(&settings.artifacts_dir, &head);
    }
    Ok(SessionEnd {
        summary,
        settings,
        redactor: run_redactor,
    })
}

/// Loads and validates a workflow; every problem becomes one error.
pub(crate) fn load_workflow(
    file: &Path,
    options: &LoadOptions,
    color: bool,
) -> Result<Workflow, Error> {
    workflow::load(file, options).map_err(|diagnostics| Error::Workflow {
        rendered: diagnostics.render(color),
        diagnostics,
    })
}

/// Only the secrets the host knew before the run.
fn known_secrets(host: &RunHost<'_>) -> RunSecrets {
    RunSecrets::default().mask_also(host.known_secrets.iter().map(|secret| secret.expose()))
}

/// Fetches the workflow's `secrets.names` from its vault (or the host's).
async fn fetch_secrets(
    host: &RunHost<'_>,
    workflow: &Workflow,
    azure: &AzureSignIn,
) -> Result<RunSecrets, Error> {
    let Some(config) = &workflow.secrets else {
        if let Some(vault) = host.vault {
            warn(
                host.in_pipeline(),
                &format!(
                    "key vault `{vault}` is given, but the workflow lists no `secrets`; nothing is fetched"
                ),
            );
        }
        return Ok(RunSecrets::default());
    };
    fetch_workflow_secrets(&SecretsRequest::of(config, host.vault), azure)
        .await
        .map_err(Error::Secrets)
}

fn report_audit_head(artifacts_dir: &Path, head: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "audit head {head} (check: agent-orch audit verify {} --head {head})",
        artifacts_dir.display()
    );
}

fn report_warning(err: &std::io::Error) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "warning: {err}");
}
