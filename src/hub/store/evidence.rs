//! Evidence: the audit trail of commits, pull requests, test and build results per task.

use serde::{Deserialize, Serialize};

use super::rows::{self, EVIDENCE_COLUMNS};
use super::{Store, StoreError, on_reader, on_writer};
use crate::hub::model::{Evidence, EvidenceKind, now_ms};

/// Evidence as an agent reports it (the body of `POST /api/git/evidence`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvidence {
    pub task_id: i64,
    pub agent_id: Option<String>,
    pub kind: EvidenceKind,
    pub reference: String,
    #[serde(default)]
    pub detail: String,
    /// Names this report so that sending it again records nothing new: a client that lost the
    /// answer can retry safely. Unique per task.
    pub idempotency_key: Option<String>,
}

impl NewEvidence {
    /// Evidence with no agent, detail or idempotency key; set the rest with struct update syntax.
    pub fn new(task_id: i64, kind: EvidenceKind, reference: impl Into<String>) -> NewEvidence {
        NewEvidence {
            task_id,
            agent_id: None,
            kind,
            reference: reference.into(),
            detail: String::new(),
            idempotency_key: None,
        }
    }
}

/// What recording evidence did.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    /// The evidence is new.
    Created(Evidence),
    /// The idempotency key was seen before, with the same evidence: this is the earlier record.
    Repeated(Evidence),
}

impl Recorded {
    pub fn evidence(&self) -> &Evidence {
        match self {
            Recorded::Created(evidence) | Recorded::Repeated(evidence) => evidence,
        }
    }
}

impl Store {
    pub async fn add_evidence(&self, new: &NewEvidence) -> Result<Recorded, StoreError> {
        let returning = rows::returning(EVIDENCE_COLUMNS);
        // A repeated key inserts nothing and returns no row; on PostgreSQL the insert first waits
        // for a concurrent one with the same key to commit, so the lookup below finds it.
        let sql = format!(
            "INSERT INTO evidence AS e \
             (task_id, agent_id, kind, reference, detail, idempotency_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (task_id, idempotency_key) DO NOTHING RETURNING {returning}"
        );
        let inserted = on_writer!(self, pool => sqlx::query(&sql)
            .bind(new.task_id)
            .bind(new.agent_id.as_deref())
            .bind(new.kind.as_str())
            .bind(&new.reference)
            .bind(&new.detail)
            .bind(new.idempotency_key.as_deref())
            .bind(now_ms())
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(rows::evidence)
            .transpose())?;
        if let Some(evidence) = inserted {
            return Ok(Recorded::Created(evidence));
        }
        let Some(key) = new.idempotency_key.as_deref() else {
            return Err(StoreError::conflict(
                "the evidence was not recorded and carries no idempotency key",
            ));
        };
        let earlier = self.evidence_by_key(new.task_id, key).await?;
        let same = earlier.agent_id == new.agent_id
            && earlier.kind == new.kind
            && earlier.reference == new.reference
            && earlier.detail == new.detail;
        if same {
            Ok(Recorded::Repeated(earlier))
        } else {
            Err(StoreError::conflict(format!(
                "idempotency key `{key}` was already used for other evidence on task {} \
                 (evidence {})",
                new.task_id, earlier.id
            )))
        }
    }

    /// Read from the writer: the row may have been committed a moment ago.
    async fn evidence_by_key(&self, task_id: i64, key: &str) -> Result<Evidence, StoreError> {
        let sql = format!(
            "SELECT {EVIDENCE_COLUMNS} FROM evidence e \
             WHERE e.task_id = $1 AND e.idempotency_key = $2"
        );
        on_writer!(self, pool => sqlx::query(&sql)
            .bind(task_id)
            .bind(key)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(rows::evidence)
            .transpose())?
        .ok_or_else(|| {
            StoreError::not_found(format!("evidence with key `{key}` on task {task_id}"))
        })
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
