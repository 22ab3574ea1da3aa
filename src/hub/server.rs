//! `hub serve`: the API on a listener, the heartbeat reaper beside it, and a graceful stop
//! (in-flight requests finish, WebSockets are closed, the store is closed last).

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderValue;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::api::{self, ApiTokens, HubState};
use super::error::HubError;
use super::events::{EventBus, HubEvent};
use super::relay;
use super::store::{RetryBackoff, Store};

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub database: String,
    pub tokens: ApiTokens,
    pub cors_origins: Vec<HeaderValue>,
    pub heartbeat_timeout: Duration,
    /// How long a failed task waits before it is handed out again (doubling per failure).
    pub retry_backoff: RetryBackoff,
}

/// A hub serving in the background of the current runtime.
pub struct RunningHub {
    pub addr: SocketAddr,
    pub state: HubState,
    server: JoinHandle<Result<(), HubError>>,
    reaper: JoinHandle<()>,
}

pub async fn start(options: ServeOptions) -> Result<RunningHub, HubError> {
    let store = Store::connect(&options.database)
        .await?
        .with_retry_backoff(options.retry_backoff);
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| HubError::Bind {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(HubError::Serve)?;
    let shutdown = CancellationToken::new();
    // Replicas share a PostgreSQL database, so each one's events must reach the others.
    let events = match store.postgres_pool() {
        Some(pool) => {
            let (events, outbound) = EventBus::relayed();
            relay::start(pool, events.clone(), outbound, shutdown.clone()).await?;
            events
        }
        None => EventBus::new(),
    };
    let state = HubState {
        store,
        events,
        tokens: options.tokens,
        heartbeat_timeout_ms: i64::try_from(options.heartbeat_timeout.as_millis())
            .unwrap_or(i64::MAX),
        shutdown,
    };
    let app = api::router(state.clone(), &options.cors_origins);
    let shutdown = state.shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(HubError::Serve)
    });
    let reaper = tokio::spawn(reap_silent_agents(state.clone(), options.heartbeat_timeout));
    Ok(RunningHub {
        addr,
        state,
        server,
        reaper,
    })
}

impl RunningHub {
    /// Stops accepting, lets in-flight requests finish, closes WebSockets and the store.
    pub async fn stop(self) -> Result<(), HubError> {
        self.state.shutdown.cancel();
        self.reaper.abort();
        let served = match self.server.await {
            Ok(result) => result,
            Err(join) => Err(HubError::Serve(std::io::Error::other(join.to_string()))),
        };
        self.state.store.close().await;
        served
    }

    /// Waits until the server ends (after `state.shutdown` is cancelled by a signal).
    pub async fn wait(self) -> Result<(), HubError> {
        self.state.shutdown.cancelled().await;
        self.stop().await
    }
}

/// Re-queues the work of agents whose heartbeat stopped, checking four times per timeout, and
/// fails the assignments that ran past their task's timeout.
async fn reap_silent_agents(state: HubState, timeout: Duration) {
    let period = (timeout / 4).max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match state.store.requeue_stale(state.heartbeat_timeout_ms).await {
            Ok(requeued) if !requeued.is_empty() => {
                if let Ok(agents) = state.store.agents(state.heartbeat_timeout_ms).await {
                    for health in agents.into_iter().filter(|a| !a.healthy) {
                        state.events.publish(&HubEvent::AgentUpdated(health.agent));
                    }
                }
                api::publish_requeued(&state, requeued).await;
            }
            // A database hiccup is retried at the next tick; nothing is lost by waiting.
            Ok(_) | Err(_) => {}
        }
        // Assignments past their task's timeout are failed on the same beat.
        if let Ok(timed_out) = state.store.fail_timed_out().await
            && !timed_out.is_empty()
        {
            api::publish_requeued(&state, timed_out).await;
        }
    }
}
