//! `agent-orch worker --hub URL --id NAME`: work tasks from a hub until interrupted.

use std::io::Write;

use tokio_util::sync::CancellationToken;

use crate::cli::WorkerArgs;
use crate::error::{Error, ExitStatus};
use crate::hub::client::TOKEN_ENV;
use crate::hub::error::HubError;
use crate::hub::worker::{WorkerOptions, run_worker};

pub(crate) fn run(args: &WorkerArgs) -> Result<ExitStatus, Error> {
    let token = std::env::var(TOKEN_ENV).map_err(|_| {
        HubError::Worker(format!(
            "no hub token: set {TOKEN_ENV} to a token the hub accepts"
        ))
    })?;
    let options = WorkerOptions {
        hub: args.hub.clone(),
        token,
        id: args.id.clone(),
        host: std::env::var("HOSTNAME").unwrap_or_default(),
        capabilities: args.capabilities.clone(),
        workdir: std::path::absolute(&args.workdir).unwrap_or_else(|_| args.workdir.clone()),
        heartbeat_interval: args.heartbeat_interval,
        poll_interval: args.poll_interval,
        max_tasks: args.max_tasks,
        exit_when_idle: args.exit_when_idle,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
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
        "worker `{}`: {} completed, {} failed, {} taken back by the hub",
        options.id,
        summary.completed,
        summary.failed,
        summary.lost
    );
    Ok(if summary.failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::RunFailed
    })
}
