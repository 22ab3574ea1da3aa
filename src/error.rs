//! The errors that end a command before or around a run, and the exit codes they map to.

use std::path::PathBuf;

use crate::workflow::Diagnostics;

/// The documented exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// The workflow succeeded (or validated, planned, printed).
    Success,
    /// The workflow ran and did not succeed: it failed or gave up.
    RunFailed,
    /// Invalid workflow or usage: nothing ran.
    Invalid,
    /// Interrupted by Ctrl-C, SIGTERM or a pipeline cancel.
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::RunFailed => 1,
            ExitStatus::Invalid => 2,
            ExitStatus::Interrupted => 130,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Already rendered with carets; printed as is.
    #[error("{rendered}")]
    Workflow {
        diagnostics: Diagnostics,
        rendered: String,
    },
    #[error("failed to create the artifacts folder `{}`", path.display())]
    Artifacts {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("failed to listen for Ctrl-C / SIGTERM")]
    Signals(#[source] std::io::Error),
    #[error("failed to start the demo's fake Kubernetes cluster")]
    FakeCluster(#[source] std::io::Error),
    /// The environment could not be rendered, or the deploy ledger prepared; no step ran.
    #[error("failed to start the run, so nothing ran")]
    RunStart(#[source] crate::workflow_run::RunStartError),
    #[error("failed to write to stdout")]
    Stdout(#[source] std::io::Error),
    /// A secret could not be fetched; no step ran.
    #[error("failed to fetch the workflow's secrets, so nothing ran")]
    Secrets(#[source] crate::azure::SecretsError),
    /// The pipeline's inputs or service connection are wrong; nothing ran.
    #[error("the task's inputs are invalid, so nothing ran")]
    TaskEnvironment(#[source] crate::ado::task_environment::TaskEnvironmentError),
    #[error(transparent)]
    Hub(#[from] crate::hub::error::HubError),
    #[error(transparent)]
    Audit(#[from] crate::report::audit::AuditChainError),
    /// The chain holds together, but ends somewhere other than where the run said it ended.
    #[error(
        "audit log `{}` is intact to its last line, but its head {found} is not the recorded head {expected}: lines were rewritten from some point to the end, or cut off",
        path.display()
    )]
    AuditHead {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// A deploy to a `require_approval` environment was not approved; nothing ran.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
}

/// The variable the Azure Pipelines agent sets in a deployment job (`Environment.Name`).
pub const ENVIRONMENT_NAME_VAR: &str = "ENVIRONMENT_NAME";

/// Why a run that needs an approval may not start.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(
        "environment `{environment}` requires approval to deploy, and there is no terminal to ask on: {deploys}; pass --approve-deploy (or set AGENT_ORCH_APPROVE_DEPLOY=true) once a person has approved"
    )]
    NoTerminal {
        environment: String,
        deploys: String,
    },
    #[error("the deploy to environment `{environment}` was not approved, so nothing ran")]
    Declined { environment: String },
    #[error(
        "environment `{environment}` requires approval to deploy: in a pipeline, run agent-orch in a deployment job (`- deployment: ...` with `environment: <name>`), where Azure DevOps enforces the environment's approvals and checks; `{ENVIRONMENT_NAME_VAR}` is not set, so this is not one"
    )]
    NotDeploymentJob { environment: String },
    #[error("failed to read the answer from the terminal")]
    Terminal(#[source] std::io::Error),
}

impl Error {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Workflow { .. }
            | Error::TaskEnvironment(_)
            | Error::Approval(_)
            | Error::RunStart(crate::workflow_run::RunStartError::Environment(_)) => {
                ExitStatus::Invalid
            }
            Error::Hub(err) if err.is_usage() => ExitStatus::Invalid,
            // Not the workflow's fault (a vault, a permission, a network): exit 1, like a run
            // that could not succeed, with the message saying nothing ran.
            Error::Secrets(_)
            | Error::Hub(_)
            | Error::Artifacts { .. }
            | Error::Runtime(_)
            | Error::Signals(_)
            | Error::RunStart(_)
            | Error::FakeCluster(_)
            | Error::Stdout(_)
            | Error::Audit(_)
            | Error::AuditHead { .. } => ExitStatus::RunFailed,
        }
    }
}
