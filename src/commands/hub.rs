//! `agent-orch hub serve` and `agent-orch hub seed`.

use std::io::Write;
use std::path::Path;

use axum::http::HeaderValue;

use crate::ado::agent_env::AgentEnv;
use crate::azure::fetch_service_secret;
use crate::cli::{HubCommand, HubDatabaseArgs, HubSeedArgs, HubServeArgs};
use crate::error::{Error, ExitStatus};
use crate::hub::api::{ApiTokens, TOKENS_ENV, TokenError};
use crate::hub::error::HubError;
use crate::hub::plan::Plan;
use crate::hub::server::{self, ServeOptions};
use crate::hub::store::{Store, StoreKind, redact_url};

pub(crate) fn run(command: &HubCommand) -> Result<ExitStatus, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    match command {
        HubCommand::Serve(args) => runtime.block_on(serve(args)),
        HubCommand::Seed(args) => runtime.block_on(seed(args)),
    }
}

async fn serve(args: &HubServeArgs) -> Result<ExitStatus, Error> {
    let (tokens, tokens_origin) = tokens(args).await?;
    let cors_origins = args
        .cors_origins
        .iter()
        .map(|origin| {
            HeaderValue::from_str(origin).map_err(|_| HubError::CorsOrigin(origin.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let database = prepare_database(&args.database)?;
    let hub = server::start(ServeOptions {
        listen: args.listen,
        database: database.clone(),
        tokens,
        cors_origins,
        heartbeat_timeout: args.heartbeat_timeout,
    })
    .await?;
    let store = match hub.state.store.kind() {
        StoreKind::Sqlite => "sqlite",
        StoreKind::Postgres => "postgres",
    };
    say(&format!(
        "hub listening on http://{} (store: {store} {}; {} write token(s) from {tokens_origin})",
        hub.addr,
        redact_url(&database),
        hub.state.tokens.count(),
    ));
    let shutdown = hub.state.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    hub.wait().await?;
    say("hub stopped");
    Ok(ExitStatus::Success)
}

/// The write tokens, from Key Vault when `--tokens-vault` names one, else from the environment;
/// and where they came from, for the start-up line.
async fn tokens(args: &HubServeArgs) -> Result<(ApiTokens, String), Error> {
    let Some(vault) = &args.tokens_vault else {
        return Ok((
            ApiTokens::from_env().map_err(HubError::from)?,
            TOKENS_ENV.to_owned(),
        ));
    };
    let env = AgentEnv::from_process();
    if env.var(TOKENS_ENV).is_some() {
        return Err(HubError::from(TokenError::TwoSources).into());
    }
    let secret = fetch_service_secret(
        vault,
        &args.tokens_secret,
        &env,
        args.azure.managed_identity,
    )
    .await
    .map_err(|source| HubError::KeyVault {
        what: "the hub's write tokens",
        source,
    })?;
    let origin = format!("secret `{}` of key vault `{vault}`", args.tokens_secret);
    let tokens = ApiTokens::from_list(secret.expose(), &origin).map_err(HubError::from)?;
    Ok((tokens, origin))
}

async fn seed(args: &HubSeedArgs) -> Result<ExitStatus, Error> {
    let plan = Plan::load(&args.plan).map_err(HubError::from)?;
    let database = prepare_database(&args.database)?;
    let store = Store::connect(&database).await.map_err(HubError::from)?;
    let tasks = plan.tasks();
    let project = store
        .import_plan(&plan.project.name, plan.project.repo.as_deref(), &tasks)
        .await
        .map_err(HubError::from)?;
    for agent in &plan.agents {
        store
            .heartbeat(&agent.id, &agent.host, &agent.capabilities)
            .await
            .map_err(HubError::from)?;
    }
    store.close().await;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "seeded project `{}` (id {}): {} tasks in {} epics, {} hours, {} agents",
        project.name,
        project.id,
        tasks.len(),
        plan.epics.len(),
        plan.total_hours(),
        plan.agents.len()
    )
    .map_err(Error::Stdout)?;
    Ok(ExitStatus::Success)
}

/// Creates the folder of a SQLite file, so the default `.agent-orch/hub.db` just works.
fn prepare_database(args: &HubDatabaseArgs) -> Result<String, Error> {
    if let Some(path) = args
        .database
        .strip_prefix("sqlite://")
        .or_else(|| args.database.strip_prefix("sqlite:"))
    {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(folder) = Path::new(file)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|source| Error::Artifacts {
                path: folder.to_owned(),
                source,
            })?;
        }
    }
    Ok(args.database.clone())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
