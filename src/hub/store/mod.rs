//! The hub's store: one API over an embedded SQLite file (the default, nothing to install) and
//! PostgreSQL (several hub replicas on one database). Every query is parameterized; the SQL is
//! written once in a dialect both databases accept (`$1` placeholders, `RETURNING`,
//! `ON CONFLICT`), except the claim, where each database gets its own way of being atomic.

mod agents;
mod assignments;
mod claim_queue;
mod error;
mod evidence;
mod leases;
mod progress;
mod rows;
mod tasks;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use claim_queue::ClaimQueue;
pub use error::{StoreError, StoreErrorKind};
pub use evidence::{NewEvidence, Recorded};
pub use tasks::{NewTask, TaskFilter};

/// Which database a store talks to, for messages and for the few places that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// Where concurrent claims wait to be answered together; `None` in the store the batching
    /// task itself uses, which claims directly.
    claims: Option<ClaimQueue>,
    /// How long a failed task waits before it is handed out again.
    retry_backoff: RetryBackoff,
}

/// How long a failed task waits before it is handed out again: `base` after its first failure,
/// doubled after each further one, never more than `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryBackoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryBackoff {
    fn default() -> RetryBackoff {
        RetryBackoff {
            base: Duration::from_secs(30),
            cap: Duration::from_secs(3600),
        }
    }
}

/// The longest wait a backoff may give; keeps the doubling in SQL far from overflow.
const MAX_BACKOFF: Duration = Duration::from_secs(30 * 24 * 3600);

impl RetryBackoff {
    pub(crate) fn cap_ms(self) -> i64 {
        millis(self.cap.min(MAX_BACKOFF))
    }

    pub(crate) fn base_ms(self) -> i64 {
        millis(self.base).min(self.cap_ms())
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Clone, Debug)]
enum Backend {
    /// SQLite allows one writer at a time; one writer connection queues writes in the pool
    /// (first come, first served) instead of spinning in `SQLITE_BUSY` retries, which is what
    /// keeps claim latency flat under many concurrent workers. Readers run beside it (WAL).
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs the same block against whichever pool the store has. The block is expanded once per
/// backend, so it may use backend-specific row and transaction types.
macro_rules! on_reader {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::hub::store::Backend::Sqlite { reader: $pool, .. } => $body,
            $crate::hub::store::Backend::Postgres($pool) => $body,
        }
    };
}

macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::hub::store::Backend::Sqlite { writer: $pool, .. } => $body,
            $crate::hub::store::Backend::Postgres($pool) => $body,
        }
    };
}

pub(crate) use {on_reader, on_writer};

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "hub",
        include_str!("../../../migrations/sqlite/0001_hub.sql"),
    ),
    (
        2,
        "evidence idempotency",
        include_str!("../../../migrations/sqlite/0002_evidence_idempotency.sql"),
    ),
    (
        3,
        "task environment and vars",
        include_str!("../../../migrations/sqlite/0003_task_environment_vars.sql"),
    ),
    (
        4,
        "assignment cancel",
        include_str!("../../../migrations/sqlite/0004_assignment_cancel.sql"),
    ),
    (
        5,
        "task semantics",
        include_str!("../../../migrations/sqlite/0005_task_semantics.sql"),
    ),
    (
        6,
        "leases",
        include_str!("../../../migrations/sqlite/0006_leases.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "hub",
        include_str!("../../../migrations/postgres/0001_hub.sql"),
    ),
    (
        2,
        "evidence idempotency",
        include_str!("../../../migrations/postgres/0002_evidence_idempotency.sql"),
    ),
    (
        3,
        "task environment and vars",
        include_str!("../../../migrations/postgres/0003_task_environment_vars.sql"),
    ),
    (
        4,
        "assignment cancel",
        include_str!("../../../migrations/postgres/0004_assignment_cancel.sql"),
    ),
    (
        5,
        "task semantics",
        include_str!("../../../migrations/postgres/0005_task_semantics.sql"),
    ),
    (
        6,
        "leases",
        include_str!("../../../migrations/postgres/0006_leases.sql"),
    ),
];

/// How many connections a PostgreSQL hub keeps; enough for 64 concurrent claims on 2 cores.
const POSTGRES_CONNECTIONS: u32 = 16;
const SQLITE_READERS: u32 = 4;

impl Store {
    /// Opens the database a URL names (`sqlite://path.db`, `postgres://...`) and brings its
    /// schema up to date. A SQLite file is created when missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let store = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await?
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::connect_postgres(url).await?
        } else {
            return Err(StoreError::new(
                StoreErrorKind::Url,
                format!(
                    "unsupported database URL `{}` (expected `sqlite://FILE` or `postgres://...`)",
                    redact_url(url)
                ),
            ));
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn connect_sqlite(url: &str) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| url_error(url, err))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL survives a killed process (only an OS crash may lose the last commits).
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Checkpoints fsync the database file; done by the committing writer they stall
            // every claim queued behind it. A background task checkpoints instead.
            .pragma("wal_autocheckpoint", "0");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|err| connect_error(url, err))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(SQLITE_READERS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|err| connect_error(url, err))?;
        tokio::spawn(checkpoint_in_background(reader.clone()));
        Ok(Store::new(Backend::Sqlite { writer, reader }))
    }

    async fn connect_postgres(url: &str) -> Result<Store, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|err| url_error(url, err))?;
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|err| connect_error(url, err))?;
        Ok(Store::new(Backend::Postgres(pool)))
    }

    fn new(backend: Backend) -> Store {
        let direct = Store {
            backend: backend.clone(),
            claims: None,
            retry_backoff: RetryBackoff::default(),
        };
        Store {
            backend,
            claims: Some(ClaimQueue::start(direct)),
            retry_backoff: RetryBackoff::default(),
        }
    }

    /// This store with another backoff for failed tasks (the claim queue's own store only
    /// claims and releases, which never back off).
    pub fn with_retry_backoff(mut self, retry_backoff: RetryBackoff) -> Store {
        self.retry_backoff = retry_backoff;
        self
    }

    /// The PostgreSQL pool, for what only PostgreSQL offers (events between replicas).
    pub(crate) fn postgres_pool(&self) -> Option<PgPool> {
        match &self.backend {
            Backend::Postgres(pool) => Some(pool.clone()),
            Backend::Sqlite { .. } => None,
        }
    }

    pub fn kind(&self) -> StoreKind {
        match self.backend {
            Backend::Sqlite { .. } => StoreKind::Sqlite,
            Backend::Postgres(_) => StoreKind::Postgres,
        }
    }

    /// Applies pending migrations. On PostgreSQL the migrator takes an advisory lock, so hub
    /// replicas starting together do not race.
    async fn migrate(&self) -> Result<(), StoreError> {
        let migrate_error = |err| {
            StoreError::with_source(
                StoreErrorKind::Migrate,
                "failed to migrate the hub database",
                err,
            )
        };
        match &self.backend {
            Backend::Sqlite { writer, .. } => migrator(SQLITE_MIGRATIONS)
                .run(writer)
                .await
                .map_err(migrate_error),
            Backend::Postgres(pool) => migrator(POSTGRES_MIGRATIONS)
                .run(pool)
                .await
                .map_err(migrate_error),
        }
    }

    /// Whether the database answers; `/health` reports it.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_reader!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection, letting in-flight queries finish.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// How often the SQLite write-ahead log is copied back into the database file.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(250);

/// Copies the write-ahead log into the database off the write path. `PASSIVE` never blocks
/// the writer; the task ends when the store is closed.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut ticker = tokio::time::interval(CHECKPOINT_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if pool.is_closed() {
            return;
        }
        // A busy or failed checkpoint is retried at the next tick.
        let result = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await;
        if let Err(sqlx::Error::PoolClosed) = result {
            return;
        }
    }
}

fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            migrations
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}

fn url_error(url: &str, err: sqlx::Error) -> StoreError {
    StoreError::with_source(
        StoreErrorKind::Url,
        format!("invalid database URL `{}`", redact_url(url)),
        err,
    )
}

fn connect_error(url: &str, err: sqlx::Error) -> StoreError {
    StoreError::with_source(
        StoreErrorKind::Connect,
        format!("failed to open the hub database `{}`", redact_url(url)),
        err,
    )
}

/// A database URL with its password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://hub:s3cret@db:5432/hub"),
            "postgres://hub:***@db:5432/hub"
        );
        assert_eq!(
            redact_url("postgres://root@127.0.0.1/test"),
            "postgres://root@127.0.0.1/test"
        );
        assert_eq!(redact_url("sqlite://hub.db"), "sqlite://hub.db");
    }
}
