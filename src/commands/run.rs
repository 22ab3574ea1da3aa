//! `agent-orch run`: the loop, with reports written as it goes. `agent-orch task` runs the same
//! way through [`execute`], with its arguments read from the pipeline.

use std::time::Duration;

use crate::ado::logging::LoggingCommand;
use crate::ado::pipeline_context::PipelineContext;
use crate::ado::service_connection::{OidcSettings, ServiceConnection};
use crate::azure::credential::CredentialSources;
use crate::azure::sign_in::AzureSignIn;
use crate::azure::transport::OVERRIDE_ENV;
use crate::azure::{RunSecrets, SecretsRequest, fetch_workflow_secrets};
use crate::cli::{ColorChoice, RunArgs};
use crate::core::agent_env::AgentEnv;
use crate::core::secret::Secret;
use crate::engine::events::RunOutcome;
use crate::engine::interrupt::Interrupts;
use crate::engine::settings::RunSettings;
use crate::error::{Error, ExitStatus};
use crate::report::console::Console;
use crate::report::pipeline::{PipelineConsole, StepPositions};
use crate::report::warning::warn;
use crate::report::{Reporter, Reporters};
use crate::workflow::Workflow;
use crate::workflow_run::run_workflow;

pub(crate) fn run(
    args: &RunArgs,
    color_choice: ColorChoice,
    color: bool,
) -> Result<ExitStatus, Error> {
    let agent = AgentEnv::from_process();
    let oidc = OidcSettings::read(&agent);
    let invocation = Invocation {
        args,
        agent: &agent,
        connection: None,
        oidc: oidc.as_ref(),
        vault: None,
        pipeline: agent.in_pipeline(),
        known_secrets: oidc.iter().map(|o| &o.access_token).collect(),
    };
    execute(&invocation, color_choice, color)
}

/// A run, resolved from the command line (`run`) or the pipeline's inputs (`task`).
pub(crate) struct Invocation<'a> {
    pub(crate) args: &'a RunArgs,
    pub(crate) agent: &'a AgentEnv,
    /// The service connection to sign in to Key Vault with (`task` only).
    pub(crate) connection: Option<&'a ServiceConnection>,
    pub(crate) oidc: Option<&'a OidcSettings>,
    /// A vault that replaces the workflow's `secrets.vault` (the task's `keyVaultName`).
    pub(crate) vault: Option<&'a str>,
    /// Write Azure Pipelines logging commands instead of the terminal view.
    pub(crate) pipeline: bool,
    /// Secrets from the environment (tokens, connection secrets), announced with
    /// `task.setsecret` before anything else is printed.
    pub(crate) known_secrets: Vec<&'a Secret>,
}

pub(crate) fn execute(
    invocation: &Invocation<'_>,
    color_choice: ColorChoice,
    color: bool,
) -> Result<ExitStatus, Error> {
    if invocation.pipeline {
        announce_secrets(
            invocation
                .known_secrets
                .iter()
                .map(|secret| secret.expose()),
        )?;
    }
    let args = invocation.args;
    let workflow = super::load(&args.workflow, color)?;
    // Before anything of the run, secrets included: a refused deploy leaves no trace.
    super::deploy_approval::require(&workflow, args, invocation.agent)?;
    let settings = RunSettings::resolve(args, &workflow);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let azure = sign_in(invocation);
    let status = runtime.block_on(async {
        // Every secret first: a run that cannot have them must not start. A dry run needs
        // none (it shows placeholders), so it works offline, in a pull request's build.
        let secrets = if settings.dry_run {
            RunSecrets::default()
        } else {
            fetch_secrets(invocation, &workflow, &azure).await?
        }
        .mask_also(
            invocation
                .known_secrets
                .iter()
                .map(|secret| secret.expose()),
        );
        if invocation.pipeline {
            announce_secrets(secrets.values().iter().map(String::as_str))?;
        }
        std::fs::create_dir_all(&settings.artifacts_dir).map_err(|source| Error::Artifacts {
            path: settings.artifacts_dir.clone(),
            source,
        })?;
        let interrupts = Interrupts::listen().map_err(Error::Signals)?;
        let console = (!invocation.pipeline).then(|| {
            Console::stderr(match color_choice {
                ColorChoice::Auto => anstream::ColorChoice::Auto,
                ColorChoice::Always => anstream::ColorChoice::Always,
                ColorChoice::Never => anstream::ColorChoice::Never,
            })
        });
        let mut reporters =
            Reporters::for_run(&settings.artifacts_dir, console).map_err(|source| {
                Error::Artifacts {
                    path: settings.artifacts_dir.clone(),
                    source,
                }
            })?;
        let pipeline_context = PipelineContext::read(invocation.agent);
        if invocation.pipeline {
            let positions = StepPositions::of(&workflow)
                .relative_to(pipeline_context.sources_directory.as_deref());
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
            // Recorded outside the artifacts (the console, the pipeline log), the head makes
            // the whole audit file tamper-evident: see `agent-orch audit verify --head`.
            report_audit_head(&settings.artifacts_dir, &head);
        }
        Ok::<_, Error>(match summary.outcome {
            RunOutcome::Succeeded | RunOutcome::SucceededWithIssues => ExitStatus::Success,
            RunOutcome::Failed => ExitStatus::RunFailed,
            RunOutcome::Interrupted => ExitStatus::Interrupted,
        })
    });
    // A step that ignored cancellation must not keep the process alive after the reports.
    runtime.shutdown_timeout(Duration::from_secs(2));
    status
}

/// How the run signs in to Azure (Key Vault, AKS): with the service connection or, without
/// one, workload identity, the managed identity or the Azure CLI.
fn sign_in(invocation: &Invocation<'_>) -> AzureSignIn {
    let agent = invocation.agent;
    let sources = CredentialSources {
        connection: invocation.connection,
        oidc: invocation.oidc,
        ..CredentialSources::from_env(agent, agent.in_pipeline())
    };
    AzureSignIn::new(sources, agent.var(OVERRIDE_ENV))
}

/// Fetches the workflow's `secrets.names` from its vault (or the task's).
async fn fetch_secrets(
    invocation: &Invocation<'_>,
    workflow: &Workflow,
    azure: &AzureSignIn,
) -> Result<RunSecrets, Error> {
    let Some(config) = &workflow.secrets else {
        if let Some(vault) = invocation.vault {
            warn(
                invocation.pipeline,
                &format!(
                    "key vault `{vault}` is given, but the workflow lists no `secrets`; nothing is fetched"
                ),
            );
        }
        return Ok(RunSecrets::default());
    };
    fetch_workflow_secrets(&SecretsRequest::of(config, invocation.vault), azure)
        .await
        .map_err(Error::Secrets)
}

/// Announces each value with `task.setsecret` on stdout.
fn announce_secrets<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<(), Error> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    for command in set_secret_commands(values) {
        writeln!(stdout, "{command}").map_err(Error::Stdout)?;
    }
    stdout.flush().map_err(Error::Stdout)
}

/// `task.setsecret` for each value, and for each line of a multi-line value (a PEM key, say):
/// the agent masks line by line, so a whole multi-line value would never match one line.
fn set_secret_commands<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<LoggingCommand> {
    let mut commands = Vec::new();
    for value in values.into_iter().filter(|v| !v.is_empty()) {
        commands.push(LoggingCommand::set_secret(value));
        if value.contains('\n') {
            // Very short lines (`-----`, blank) would mask half the log for nothing.
            for line in value.lines().map(str::trim).filter(|l| l.len() >= 6) {
                commands.push(LoggingCommand::set_secret(line));
            }
        }
    }
    commands
}

fn report_audit_head(artifacts_dir: &std::path::Path, head: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_secrets_are_announced_whole_and_by_line() {
        let lines: Vec<String> =
            set_secret_commands(["token-1", "", "-----BEGIN KEY-----\nMIIEvQIBADANBg\n---\n"])
                .iter()
                .map(ToString::to_string)
                .collect();
        assert_eq!(
            lines,
            [
                "##vso[task.setsecret]token-1",
                "##vso[task.setsecret]-----BEGIN KEY-----%0AMIIEvQIBADANBg%0A---%0A",
                "##vso[task.setsecret]-----BEGIN KEY-----",
                "##vso[task.setsecret]MIIEvQIBADANBg",
            ]
        );
    }
}
