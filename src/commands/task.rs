//! `agent-orch task`: what the `AgentOrch@1` Node shim runs inside a pipeline job.
//!
//! The inputs (`INPUT_*`), the service connection (`ENDPOINT_*`) and the OIDC settings are read
//! from the environment the agent hands the task; the run is then exactly `run`'s, with the
//! pipeline console (logging commands on stdout). Whatever happens, the last line is a
//! `task.complete`: a problem before the run (bad inputs, an invalid workflow, a secret that
//! cannot be fetched) is a `task.logissue` error and `result=Failed`.

use crate::core::error_chain::error_chain;
use std::io::Write;
use std::path::PathBuf;

use crate::ado::logging::{Issue, LoggingCommand, TaskResult};
use crate::ado::task_environment::TaskEnvironment;
use crate::core::agent_env::AgentEnv;
use crate::error::{Error, ExitStatus};
use crate::session::{self, Output, RunHost, RunOptions};

pub(crate) fn run(color: bool) -> Result<ExitStatus, Error> {
    let agent = AgentEnv::from_process();
    let result = run_task(&agent, color);
    if let Err(err) = &result {
        fail_task(err);
    }
    result
}

fn run_task(agent: &AgentEnv, color: bool) -> Result<ExitStatus, Error> {
    let task = TaskEnvironment::read(agent).map_err(Error::TaskEnvironment)?;
    let inputs = &task.inputs;
    let options = RunOptions {
        environment: inputs.environment.clone(),
        vars: inputs
            .extra_variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        artifacts: artifacts_folder(&task),
        max_iterations: inputs.max_iterations,
        dry_run: inputs.dry_run,
        // The approval is a person's, given in the pipeline definition: `--approve` as a task input.
        approve: inputs.approve_dangerous_changes,
        // A deployment job's environment approves deploys; no input can stand in for it.
        approve_deploy: false,
        ..RunOptions::new(&inputs.workflow_file)
    };
    let host = RunHost {
        connection: task.connection.as_ref(),
        oidc: task.oidc.as_ref(),
        vault: inputs.key_vault_name.as_deref(),
        color,
        known_secrets: task.secrets(),
        ..RunHost::new(agent, Output::Pipeline)
    };
    session::run(&options, &host)
}

/// The `artifactsFolder` input, else `agent-orch` under the artifact staging directory (what a
/// later `PublishPipelineArtifact` step sees), else `run`'s default.
fn artifacts_folder(task: &TaskEnvironment) -> Option<PathBuf> {
    task.inputs.artifacts_folder.clone().or_else(|| {
        task.pipeline
            .artifact_staging_directory
            .as_ref()
            .map(|dir| dir.join("agent-orch"))
    })
}

/// The run never started: say why on the summary page and fail the task.
fn fail_task(err: &Error) {
    let message = match err {
        Error::Workflow { diagnostics, .. } => diagnostics.render(false),
        other => error_chain(other),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "{}",
        LoggingCommand::log_issue(&Issue::error(message.trim_end()))
    );
    let _ = writeln!(
        stdout,
        "{}",
        LoggingCommand::complete(TaskResult::Failed, "nothing ran")
    );
    let _ = stdout.flush();
}
