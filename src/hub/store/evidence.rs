//! Evidence: the audit trail of commits, pull requests, test and build results per task.

use super::rows::{self, EVIDENCE_COLUMNS};
use super::{Store, StoreError, on_reader, on_writer};
use crate::hub::model::{Evidence, EvidenceKind, now_ms};

impl Store {
    pub async fn add_evidence(
        &self,
        task_id: i64,
        agent_id: Option<&str>,
        kind: EvidenceKind,
        reference: &str,
        detail: &str,
    ) -> Result<Evidence, StoreError> {
        let returning = rows::returning(EVIDENCE_COLUMNS);
        let sql = format!(
            "INSERT INTO evidence AS e (task_id, agent_id, kind, reference, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {returning}"
        );
        on_writer!(self, pool => rows::evidence(
            &sqlx::query(&sql)
                .bind(task_id)
                .bind(agent_id)
                .bind(kind.as_str())
                .bind(reference)
                .bind(detail)
                .bind(now_ms())
                .fetch_one(pool)
                .await?,
        ))
    }

    pub async fn evidence_for(&self, task_id: i64) -> Result<Vec<Evidence>, StoreError> {
        // A task that does not exist is a 404, not an empty trail.
        self.task(task_id).await?;
        let sql =
            format!("SELECT {EVIDENCE_COLUMNS} FROM evidence e WHERE e.task_id = $1 ORDER BY e.id");
        on_reader!(self, pool => sqlx::query(&sql)
            .bind(task_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::evidence)
            .collect())
    }
}
