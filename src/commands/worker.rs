//! `agent-orch worker --hub URL --id NAME`: work tasks from a hub until interrupted.

use std::io::Write;

use tokio_util::sync::CancellationToken;

use crate::cli::WorkerArgs;
use crate::core::agent_env::AgentEnv;
use crate::core::secret::Secret;
use crate::error::{Error, ExitStatus};
use crate::hub::client::TOKEN_ENV;
use crate::hub::error::HubError;
use crate::worker::{TokenVault, WorkerOptions, run_worker};

pub(crate) fn run(args: &WorkerArgs) -> Result<ExitStatus, Error> {
    let environment = AgentEnv::from_process();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let token = runtime.block_on(token(args, &environment))?;
    let options = WorkerOptions {
        hub: args.hub.clone(),
        token,
        id: args.id.clone(),
        host: environment.var("HOSTNAME").unwrap_or_default().to_owned(),
        capabilities: args.capabilities.clone(),
        workdir: std::path::absolute(&args.workdir).unwrap_or_else(|_| args.workdir.clone()),
        heartbeat_interval: args.heartbeat_interval,
        poll_interval: args.poll_interval,
        max_tasks: args.max_tasks,
        exit_when_idle: args.exit_when_idle,
        managed_identity: args.azure.managed_identity,
        token_vault: token_vault(args),
        environment,
    };
    let summary = runtime.block_on(async {
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_signal.cancel();
        });
        run_worker(&options, stop).await
    })?;
    let _ = writeln!(
        std::io::stderr().lock(),
        "worker `{}`: {} completed, {} failed, {} taken back by the hub, {} cancelled",
        options.id,
        summary.completed,
        summary.failed,
        summary.lost,
        summary.cancelled
    );
    Ok(if summary.failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::RunFailed
    })
}

/// The Key Vault secret `--token-vault` names, if any.
fn token_vault(args: &WorkerArgs) -> Option<TokenVault> {
    args.token_vault.as_ref().map(|vault| TokenVault {
        vault: vault.clone(),
        secret: args.token_secret.clone(),
    })
}

/// The token to present to the hub: from Key Vault when `--token-vault` names one, else from
/// `AGENT_ORCH_HUB_TOKEN`.
async fn token(args: &WorkerArgs, env: &AgentEnv) -> Result<Secret, Error> {
    let Some(vault) = token_vault(args) else {
        return env.var(TOKEN_ENV).map(Secret::new).ok_or_else(|| {
            HubError::Worker(format!(
                "no hub token: set {TOKEN_ENV} to a token the hub accepts, or name a Key Vault \
                 secret that holds one with --token-vault"
            ))
            .into()
        });
    };
    Ok(vault
        .read(env, args.azure.managed_identity)
        .await
        .map_err(|source| HubError::KeyVault {
            what: "the worker's hub token",
            source,
        })?)
}
