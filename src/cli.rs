//! Command-line arguments: every flag and its environment variable, in one place.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "agent-orch",
    version,
    about = "Self-healing deploy workflows written as YAML data",
    after_help = "Exit codes: 0 success, 1 the workflow ran and did not succeed, \
                  2 invalid workflow, usage or task inputs (nothing ran), 130 interrupted. \
                  A Key Vault secret that cannot be fetched exits 1 before any step runs."
)]
pub struct Cli {
    /// When to use colours on the terminal (`NO_COLOR` is respected under `auto`).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true, env = "AGENT_ORCH_COLOR")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow: gate → deploy → verify, repairing and retrying until success or a safe stop.
    Run(RunArgs),
    /// Check workflow files and report every error; runs nothing.
    Validate(ValidateArgs),
    /// Print the fully expanded workflow (templates inlined, parameters bound); runs nothing.
    Plan(PlanArgs),
    /// Print the JSON Schema of the workflow format (for editors).
    Schema,
    /// Run the sample workflow (workflows/demo.yaml) against a local fake Kubernetes cluster.
    Demo(DemoArgs),
    /// Run as the `AgentOrch@1` Azure Pipelines task: inputs from `INPUT_*`, the service
    /// connection from `ENDPOINT_*`, logging commands on stdout.
    Task,
    /// The coordination hub for agent fleets: serve it, or load a plan into it.
    #[command(subcommand)]
    Hub(HubCommand),
    /// Work for a hub: register, claim ready tasks, run their workflows, report back.
    Worker(WorkerArgs),
    /// Check a run's records.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of a run's `audit.jsonl`: every line in order, none edited,
    /// removed or inserted. Prints the line count and the chain's head on stdout.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// A run's artifacts folder, or its `audit.jsonl`.
    #[arg(value_name = "RUN_DIR|FILE")]
    pub path: PathBuf,

    /// The head recorded outside the artifacts when the run ended (its log prints it): a file
    /// rewritten from some line to its end, or cut short, has another head.
    #[arg(long, value_name = "SHA256")]
    pub head: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo workflow.
    #[arg(long, default_value = "workflows/demo.yaml")]
    pub workflow: PathBuf,

    /// Deploy an image that fails this way, to watch the failure caught and rolled back.
    #[arg(long = "break", value_enum, value_name = "REASON")]
    pub break_with: Option<DemoFailure>,

    /// Override a workflow variable, as with `run` (`--var port=18087`).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub vars: Vec<(String, String)>,

    /// Folder for reports and logs [default: .agent-orch/runs/RUN_ID].
    #[arg(long, env = "AGENT_ORCH_ARTIFACTS")]
    pub artifacts: Option<PathBuf>,

    /// Do not stream step output to the terminal.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Failures the fake cluster plays for an image tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DemoFailure {
    Crashloop,
    Imagepullbackoff,
    Errimagepull,
    Configerror,
    Invalidimagename,
    Oomkilled,
    Unready,
    Unschedulable,
}

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Serve the hub API, `/ws` events and the dashboard. Write tokens come from
    /// `AGENT_ORCH_HUB_TOKENS` (comma-separated) or a Key Vault secret (`--tokens-vault`).
    Serve(HubServeArgs),
    /// Load a plan (project, epics, tasks, dependencies, agents) into the hub's database.
    Seed(HubSeedArgs),
    /// Ask a hub's `/health` (its store included); exit 0 when healthy, 1 otherwise. For
    /// container health checks, where the image has no curl.
    Health(HubHealthArgs),
}

#[derive(Debug, Args)]
pub struct HubHealthArgs {
    /// The health endpoint to ask.
    #[arg(
        long,
        env = "AGENT_ORCH_HUB_HEALTH_URL",
        default_value = "http://127.0.0.1:8080/health"
    )]
    pub url: String,

    /// How long to wait for the answer.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct HubDatabaseArgs {
    /// The hub's database: `sqlite://FILE` (created when missing) or `postgres://...`.
    #[arg(
        long,
        env = "AGENT_ORCH_HUB_DATABASE",
        hide_env_values = true,
        default_value = "sqlite://.agent-orch/hub.db"
    )]
    pub database: String,
}

#[derive(Debug, Args)]
pub struct HubServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AGENT_ORCH_HUB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,

    #[command(flatten)]
    pub database: HubDatabaseArgs,

    /// A browser origin allowed to call the API cross-origin (repeatable; none = same-origin).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// An agent silent for this long is marked offline and its tasks go back to the queue.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: std::time::Duration,

    /// A failed task waits this long before it is handed out again, doubling with each further
    /// failure up to an hour (`0s`: at once).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub retry_backoff: std::time::Duration,

    /// Read the write tokens from this Azure Key Vault (a name or an `https://` URL) instead of
    /// `AGENT_ORCH_HUB_TOKENS`.
    #[arg(long, env = "AGENT_ORCH_HUB_TOKENS_VAULT", value_name = "VAULT")]
    pub tokens_vault: Option<String>,

    /// The secret of `--tokens-vault` that holds the tokens, comma-separated.
    #[arg(
        long,
        env = "AGENT_ORCH_HUB_TOKENS_SECRET",
        value_name = "NAME",
        default_value = "agent-orch-hub-tokens"
    )]
    pub tokens_secret: String,

    /// How often the tokens of `--tokens-vault` are read again, so a rotated secret takes
    /// effect without a restart (SIGHUP reads them at once); `0s` reads them only on SIGHUP.
    #[arg(
        long,
        env = "AGENT_ORCH_HUB_TOKENS_REFRESH",
        default_value = "5m",
        value_parser = humantime::parse_duration
    )]
    pub tokens_refresh: std::time::Duration,

    /// With `AGENT_ORCH_FORGE_TOKEN` set, how often the hub asks GitHub or Azure Repos whether
    /// the merge queue's pull requests merged (the task is then `done`) or closed (`blocked`).
    #[arg(long, env = "AGENT_ORCH_HUB_PULL_REQUEST_POLL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub pull_request_poll: std::time::Duration,

    /// GitHub's REST API root, for `github.com` pull requests (an Enterprise server's `/api/v3`).
    #[arg(long, env = "GITHUB_API_URL", default_value = crate::hub::pull_requests::DEFAULT_GITHUB_API, value_parser = crate::hub::pull_requests::api_url)]
    pub github_api_url: String,

    #[command(flatten)]
    pub azure: AzureSignInArgs,
}

/// How a long-running service (the hub, a worker) signs in to Azure for Key Vault. AKS workload
/// identity (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`) and App
/// Service's identity endpoint are found on their own; the Azure CLI is the last resort.
#[derive(Debug, Args)]
pub struct AzureSignInArgs {
    /// This machine is an Azure VM: sign in with its managed identity (IMDS). Off by default
    /// because elsewhere IMDS retries for a minute before giving up.
    #[arg(long, env = "AGENT_ORCH_MANAGED_IDENTITY")]
    pub managed_identity: bool,
}

#[derive(Debug, Args)]
pub struct HubSeedArgs {
    /// The plan file (see examples/fleet-plan.yaml).
    pub plan: PathBuf,

    #[command(flatten)]
    pub database: HubDatabaseArgs,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The hub's base URL, e.g. `http://127.0.0.1:8080`. The bearer token comes from
    /// `AGENT_ORCH_HUB_TOKEN` or a Key Vault secret (`--token-vault`).
    #[arg(long, env = "AGENT_ORCH_HUB_URL")]
    pub hub: String,

    /// Read the hub token from this Azure Key Vault (a name or an `https://` URL) instead of
    /// `AGENT_ORCH_HUB_TOKEN`.
    #[arg(long, env = "AGENT_ORCH_HUB_TOKEN_VAULT", value_name = "VAULT")]
    pub token_vault: Option<String>,

    /// The secret of `--token-vault` that holds the token.
    #[arg(
        long,
        env = "AGENT_ORCH_HUB_TOKEN_SECRET",
        value_name = "NAME",
        default_value = "agent-orch-hub-token"
    )]
    pub token_secret: String,

    /// Also how task workflows' `secrets:` are read.
    #[command(flatten)]
    pub azure: AzureSignInArgs,

    /// This agent's id (letters, digits, `-`, `_`, `.`).
    #[arg(long, env = "AGENT_ORCH_AGENT_ID")]
    pub id: String,

    /// The repository tasks' workflow paths are relative to.
    #[arg(long, default_value = ".")]
    pub workdir: PathBuf,

    /// Capabilities this agent advertises (repeatable).
    #[arg(long = "capability", value_name = "NAME")]
    pub capabilities: Vec<String>,

    /// How often to heartbeat.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: std::time::Duration,

    /// How long to wait before asking again when no task is ready.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub poll_interval: std::time::Duration,

    /// Stop after this many tasks (default: run until interrupted).
    #[arg(long)]
    pub max_tasks: Option<u32>,

    /// Stop when no task is ready instead of waiting for one.
    #[arg(long)]
    pub exit_when_idle: bool,
}

/// What selects and parametrizes a workflow.
#[derive(Debug, Args)]
pub struct WorkflowArgs {
    /// The workflow file.
    pub file: PathBuf,

    /// The environment to run against (a key of `environments`).
    #[arg(long = "env", short = 'e', env = "AGENT_ORCH_ENV")]
    pub environment: Option<String>,

    /// Override a workflow variable: `--var registry=myacr.azurecr.io` (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub vars: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub workflow: WorkflowArgs,

    /// Folder for reports and logs [default: .agent-orch/runs/RUN_ID].
    #[arg(long, env = "AGENT_ORCH_ARTIFACTS")]
    pub artifacts: Option<PathBuf>,

    /// Override `safety.max_iterations`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_iterations: Option<u32>,

    /// Render every step of one iteration and report what would run, running nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Do not stream step output to the terminal (it still goes to the step logs).
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Approve patches whose added lines match `safety.require_confirmation` (a human's
    /// decision; without it such a patch stops the run). Never lifts any other policy rule.
    #[arg(long, env = "AGENT_ORCH_APPROVE")]
    pub approve: bool,

    /// Approve deploying to an environment with `require_approval: true` without being asked
    /// (a human's decision, for runs without a terminal). In a pipeline, use a deployment job
    /// instead: Azure DevOps enforces the environment's approvals there.
    #[arg(long, env = "AGENT_ORCH_APPROVE_DEPLOY")]
    pub approve_deploy: bool,

    /// Save every LLM exchange of the run to this JSONL file, for `--replay`.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub record: Option<PathBuf>,

    /// Serve LLM replies from a file written by `--record`: nothing leaves the machine.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Validate against this environment (default: each file's single environment, if any).
    #[arg(long = "env", short = 'e', env = "AGENT_ORCH_ENV")]
    pub environment: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub workflow: WorkflowArgs,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got `{text}`"))?;
    if key.is_empty() {
        return Err(format!("missing key in `{text}`"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

impl Cli {
    pub fn parse_from_args(args: impl IntoIterator<Item = OsString>) -> Result<Self, clap::Error> {
        Self::try_parse_from(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn vars_parse_as_key_value_pairs() {
        let cli = Cli::try_parse_from([
            "agent-orch",
            "run",
            "w.yaml",
            "--var",
            "a=1",
            "--var",
            "b=x=y",
            "--env",
            "staging",
        ])
        .expect("valid arguments");
        let Command::Run(run) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(
            run.workflow.vars,
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert_eq!(run.workflow.environment.as_deref(), Some("staging"));
        assert!(Cli::try_parse_from(["agent-orch", "run", "w.yaml", "--var", "novalue"]).is_err());
        assert!(
            Cli::try_parse_from(["agent-orch", "run", "w.yaml", "--max-iterations", "0"]).is_err()
        );
    }

    #[test]
    fn record_and_replay_exclude_each_other() {
        let run = |args: &[&str]| {
            let mut all = vec!["agent-orch", "run", "w.yaml"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).map(|cli| match cli.command {
                Command::Run(run) => (run.approve, run.record, run.replay),
                _ => panic!("expected run"),
            })
        };
        assert_eq!(
            run(&["--approve", "--replay", "t.jsonl"]).expect("valid"),
            (true, None, Some(PathBuf::from("t.jsonl")))
        );
        assert_eq!(
            run(&["--record", "t.jsonl"]).expect("valid"),
            (false, Some(PathBuf::from("t.jsonl")), None)
        );
        assert!(run(&["--record", "a.jsonl", "--replay", "b.jsonl"]).is_err());
    }
}
