//! A fresh hub database per test: a SQLite file in a temp folder, or a PostgreSQL schema of its
//! own in the `test` database on 127.0.0.1:5432 (dropped afterwards), so tests run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};

/// Where PostgreSQL tests connect; CI and these machines run the service with trust auth.
pub(crate) fn postgres_admin_url() -> String {
    std::env::var("AGENT_ORCH_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub(crate) struct HubDb {
    pub(crate) url: String,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl HubDb {
    pub(crate) fn sqlite() -> HubDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        HubDb {
            url,
            schema: None,
            _dir: Some(dir),
        }
    }

    /// Fails the test (never skips it) when PostgreSQL is not reachable.
    pub(crate) async fn postgres() -> HubDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!(
            "hub_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = postgres_admin_url();
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "PostgreSQL is required for this test and is not reachable at {}: start \
                     one there with trust auth and a database `test` (`scripts/test` says how) \
                     or set AGENT_ORCH_TEST_POSTGRES to another: {err}",
                    agent_orch::hub::store::redact_url(&admin)
                )
            });
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut connection)
            .await
            .unwrap();
        let separator = if admin.contains('?') { '&' } else { '?' };
        HubDb {
            url: format!("{admin}{separator}options=-c%20search_path%3D{schema}"),
            schema: Some(schema),
            _dir: None,
        }
    }
}

impl Drop for HubDb {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        // Drop runs inside the test's runtime; a thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut connection) =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url()).await
                {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut connection)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Runs an async test body once against SQLite and once against PostgreSQL.
macro_rules! on_both_stores {
    ($($name:ident => $body:ident;)+) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$body(crate::support::hub_db::HubDb::sqlite()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$body(crate::support::hub_db::HubDb::postgres().await).await;
                }
            }
        )+
    };
}

pub(crate) use on_both_stores;
