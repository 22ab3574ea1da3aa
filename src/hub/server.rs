//! `hub serve`: the API on a listener, the heartbeat reaper and the progress snapshots beside
//! it, and a graceful stop (in-flight requests finish, WebSockets are closed, the store is
//! closed last).

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderValue;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::api::{self, ApiTokens, HubState};
use super::error::HubError;
use super::events::{EventBus, HubEvent};
use super::model::{ProgressSnapshot, now_ms};
use super::pull_requests::{PullRequestPoller, PullRequestPolling, poll_periodically};
use super::relay;
use super::store::{RetryBackoff, Store, StoreError};

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub database: String,
    pub tokens: ApiTokens,
    pub cors_origins: Vec<HeaderValue>,
    pub heartbeat_timeout: Duration,
    /// How long a failed task waits before it is handed out again (doubling per failure).
    pub retry_backoff: RetryBackoff,
    /// With a forge token: the hub polls the merge queue's pull requests.
    pub pull_request_polling: Option<PullRequestPolling>,
}

/// A hub serving in the background of the current runtime.
pub struct RunningHub {
    pub addr: SocketAddr,
    pub state: HubState,
    server: JoinHandle<Result<(), HubError>>,
    reaper: JoinHandle<()>,
    snapshots: JoinHandle<()>,
    pull_requests: Option<JoinHandle<()>>,
}

/// How often the hub records each project's progress: the points of the dashboard's burn-up
/// chart and what velocity is measured over.
pub const SNAPSHOT_PERIOD: Duration = Duration::from_secs(15 * 60);

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
    let replica = replica_id();
    // Replicas share a PostgreSQL database, so each one's events must reach the others.
    let events = match store.postgres_pool() {
        Some(pool) => {
            let (events, outbound) = EventBus::relayed();
            relay::start(
                pool,
                replica.clone(),
                events.clone(),
                outbound,
                shutdown.clone(),
            )
            .await?;
            events
        }
        None => EventBus::new(),
    };
    let state = HubState {
        store,
        events,
        metrics: Default::default(),
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
    let snapshots = tokio::spawn(snapshot_periodically(state.clone()));
    let pull_requests = match options.pull_request_polling {
        Some(polling) => {
            let interval = polling.interval;
            let poller = PullRequestPoller::new(polling).map_err(|err| {
                HubError::Serve(std::io::Error::other(format!(
                    "cannot build the pull request client: {err}"
                )))
            })?;
            Some(tokio::spawn(poll_periodically(
                state.clone(),
                poller,
                interval,
                replica,
            )))
        }
        None => None,
    };
    Ok(RunningHub {
        addr,
        state,
        server,
        reaper,
        snapshots,
        pull_requests,
    })
}

impl RunningHub {
    /// Stops accepting, lets in-flight requests finish, closes WebSockets and the store.
    pub async fn stop(self) -> Result<(), HubError> {
        self.state.shutdown.cancel();
        self.reaper.abort();
        self.snapshots.abort();
        if let Some(pull_requests) = &self.pull_requests {
            pull_requests.abort();
        }
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

/// This hub among the replicas on one database (the relay's origin, the poll lease's holder):
/// random, so two hubs in one process differ too (each `RandomState` has its own keys).
fn replica_id() -> String {
    format!("{:016x}", RandomState::new().hash_one(std::process::id()))
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
            state
                .metrics
                .record_timeouts(u64::try_from(timed_out.len()).unwrap_or(u64::MAX));
            api::publish_requeued(&state, timed_out).await;
        }
    }
}

/// Records every project's progress each [`SNAPSHOT_PERIOD`], the first one period after start.
async fn snapshot_periodically(state: HubState) {
    let start = tokio::time::Instant::now() + SNAPSHOT_PERIOD;
    let mut ticker = tokio::time::interval_at(start, SNAPSHOT_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // Replicas on one database each tick: half a period keeps them from doubling every
        // snapshot without letting a late tick skip one. A failure is retried next period.
        let _ = snapshot_projects(&state, SNAPSHOT_PERIOD / 2).await;
    }
}

/// Records a snapshot of each project whose latest one is at least `min_age` old (or that has
/// none) and tells `/ws` subscribers; returns what it recorded.
pub async fn snapshot_projects(
    state: &HubState,
    min_age: Duration,
) -> Result<Vec<ProgressSnapshot>, StoreError> {
    let min_age_ms = i64::try_from(min_age.as_millis()).unwrap_or(i64::MAX);
    let mut recorded = Vec::new();
    for project in state.store.projects().await? {
        let latest = state.store.latest_snapshot_at(project.id).await?;
        if latest.is_some_and(|at| now_ms().saturating_sub(at) < min_age_ms) {
            continue;
        }
        let snapshot = state
            .store
            .snapshot(project.id, state.heartbeat_timeout_ms)
            .await?;
        state
            .events
            .publish(&HubEvent::ProgressSnapshot(snapshot.clone()));
        recorded.push(snapshot);
    }
    Ok(recorded)
}
