//! `agent-orch hub serve` and `agent-orch hub seed`.

use std::io::Write;
use std::path::Path;

use axum::http::HeaderValue;
use tokio_util::sync::CancellationToken;

use crate::azure::fetch_service_secret;
use crate::cli::{HubCommand, HubDatabaseArgs, HubHealthArgs, HubSeedArgs, HubServeArgs};
use crate::core::agent_env::AgentEnv;
use crate::core::error_chain::error_chain;
use crate::core::secret::Secret;
use crate::error::{Error, ExitStatus};
use crate::hub::api::{ApiTokens, TOKENS_ENV, TokenError};
use crate::hub::error::HubError;
use crate::hub::plan::Plan;
use crate::hub::pull_requests::{FORGE_TOKEN_ENV, PullRequestPolling};
use crate::hub::server::{self, ServeOptions};
use crate::hub::store::{RetryBackoff, Store, StoreKind, redact_url};

pub(crate) fn run(command: &HubCommand) -> Result<ExitStatus, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    match command {
        HubCommand::Serve(args) => runtime.block_on(serve(args)),
        HubCommand::Seed(args) => runtime.block_on(seed(args)),
        HubCommand::Health(args) => runtime.block_on(health(args)),
    }
}

/// One GET of the health endpoint: its JSON on stdout when healthy, the reason on stderr (as
/// an error) when not.
async fn health(args: &HubHealthArgs) -> Result<ExitStatus, Error> {
    let unhealthy = |reason: String| HubError::Unhealthy {
        url: args.url.clone(),
        reason,
    };
    let client = crate::http::http_client_builder()
        .timeout(args.timeout)
        .build()
        .map_err(|err| unhealthy(error_chain(&err)))?;
    let response = client
        .get(&args.url)
        .send()
        .await
        .map_err(|err| unhealthy(error_chain(&err)))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(unhealthy(format!("{status}: {}", body.trim())).into());
    }
    writeln!(std::io::stdout().lock(), "{}", body.trim()).map_err(Error::Stdout)?;
    Ok(ExitStatus::Success)
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
        retry_backoff: RetryBackoff {
            base: args.retry_backoff,
            ..RetryBackoff::default()
        },
        // From the environment only, so the token shows in no process listing.
        pull_request_polling: std::env::var(FORGE_TOKEN_ENV)
            .ok()
            .filter(|token| !token.is_empty())
            .map(|token| PullRequestPolling {
                token: Secret::new(token),
                github_api: args.github_api_url.clone(),
                interval: args.pull_request_poll,
            }),
    })
    .await?;
    // Listening before the start-up line: a SIGHUP sent once the hub is up must not kill it.
    let hangups = Hangups::listen();
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
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            shutdown.cancel();
        }
    });
    let refresh = refresh_tokens(args, hub.state.tokens.clone(), hangups, shutdown);
    let (served, ()) = tokio::join!(hub.wait(), refresh);
    served?;
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
    if AgentEnv::from_process().var(TOKENS_ENV).is_some() {
        return Err(HubError::from(TokenError::TwoSources).into());
    }
    Ok((vault_tokens(args, vault).await?, tokens_origin(args, vault)))
}

async fn vault_tokens(args: &HubServeArgs, vault: &str) -> Result<ApiTokens, HubError> {
    let secret = fetch_service_secret(
        vault,
        &args.tokens_secret,
        &AgentEnv::from_process(),
        args.azure.managed_identity,
    )
    .await
    .map_err(|source| HubError::KeyVault {
        what: "the hub's write tokens",
        source,
    })?;
    Ok(ApiTokens::from_list(
        secret.expose(),
        &tokens_origin(args, vault),
    )?)
}

fn tokens_origin(args: &HubServeArgs, vault: &str) -> String {
    format!("secret `{}` of key vault `{vault}`", args.tokens_secret)
}

/// Reads the vault's tokens again every `--tokens-refresh` and on SIGHUP until `stop`, so a
/// rotated secret takes effect without a restart. A failed read keeps the tokens in force: a
/// vault outage must not lock every worker out.
async fn refresh_tokens(
    args: &HubServeArgs,
    tokens: ApiTokens,
    mut hangups: Hangups,
    stop: CancellationToken,
) {
    let vault = args.tokens_vault.as_deref();
    let mut ticker = (vault.is_some() && !args.tokens_refresh.is_zero()).then(|| {
        let period = args.tokens_refresh;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = async {
                match &mut ticker {
                    Some(ticker) => drop(ticker.tick().await),
                    None => std::future::pending().await,
                }
            } => {}
            () = hangups.next() => {}
        }
        let Some(vault) = vault else {
            say(&format!(
                "nothing to reload: the write tokens come from {TOKENS_ENV}, which a running \
                 process cannot read again (restart the hub, or keep them in Key Vault)"
            ));
            continue;
        };
        match vault_tokens(args, vault).await {
            Ok(fresh) => {
                if tokens.replace_with(&fresh) {
                    say(&format!(
                        "write tokens reloaded: {} token(s) from {}",
                        tokens.count(),
                        tokens_origin(args, vault)
                    ));
                }
            }
            Err(err) => say(&format!(
                "failed to reload the write tokens, keeping the {} in force: {}",
                tokens.count(),
                error_chain(&err)
            )),
        }
    }
}

/// SIGHUP, the usual "read your configuration again" signal, where there is one.
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn listen() -> Hangups {
        Hangups {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
            // The signal driver is gone; never hear of SIGHUP again rather than spin.
            self.signal = None;
        }
        std::future::pending::<()>().await;
    }
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
