//! Assignments: the atomic claim, manual assignment, and progress up to completion or
//! give-back. A task is never assigned twice: every change is guarded by the task's status in
//! the same statement, and a partial unique index allows one active assignment per task.

use super::rows::{self, ASSIGNMENT_COLUMNS, TASK_COLUMNS};
use super::tasks::{READY, READY_ORDER};
use super::{Backend, Store, StoreError, on_reader, on_writer};

/// The claiming agent (`$1`) is registered and active, as SQL.
const AGENT_ACTIVE: &str =
    "EXISTS (SELECT 1 FROM agents ag WHERE ag.id = $1 AND ag.status = 'active')";
use crate::hub::model::{Assignment, AssignmentStatus, Claim, MAX_FAILURES, TaskStatus, now_ms};

impl Store {
    /// Hands the best ready task to `agent_id`, or `None` when nothing is ready.
    ///
    /// PostgreSQL: one statement; `FOR UPDATE SKIP LOCKED` lets concurrent claims (from any
    /// number of hub replicas) each take a different row without waiting on each other.
    /// SQLite: one transaction on the single writer connection, which serializes claims.
    pub async fn claim(&self, agent_id: &str) -> Result<Option<Claim>, StoreError> {
        let now = now_ms();
        // The agent check, the task's dependencies and the claim itself travel in one
        // statement: a claim is one round trip to the database, which is what makes it cheap.
        let claim = match &self.backend {
            Backend::Postgres(pool) => {
                let sql = format!(
                    "WITH picked AS ( \
                       SELECT t.id FROM tasks t WHERE {READY} AND {AGENT_ACTIVE} \
                       ORDER BY {READY_ORDER} LIMIT 1 FOR UPDATE OF t SKIP LOCKED \
                     ), claimed AS ( \
                       UPDATE tasks AS t SET status = 'in_progress', assigned_agent = $1, \
                         progress = 0, updated_at = $2 \
                       FROM picked WHERE t.id = picked.id RETURNING {TASK_COLUMNS} \
                     ), assigned AS ( \
                       INSERT INTO assignments (task_id, agent_id, status, progress, note, \
                         assigned_at, updated_at) \
                       SELECT id, $1, 'active', 0, '', $2, $2 FROM claimed \
                       RETURNING id AS assignment_id \
                     ) SELECT claimed.*, assigned.assignment_id, \
                       (SELECT string_agg(d.depends_on::text, ',') FROM task_dependencies d \
                        WHERE d.task_id = claimed.id) AS dependencies \
                     FROM claimed, assigned"
                );
                sqlx::query(&sql)
                    .bind(agent_id)
                    .bind(now)
                    .fetch_optional(pool)
                    .await?
                    .map(|row| {
                        let assignment_id = rows::Columns::int(&row, "assignment_id")?;
                        claim_from(&row, assignment_id, agent_id, now)
                    })
                    .transpose()?
            }
            Backend::Sqlite { writer, .. } => {
                let returning = rows::returning(TASK_COLUMNS);
                let update = format!(
                    "UPDATE tasks SET status = 'in_progress', assigned_agent = $1, \
                     progress = 0, updated_at = $2 \
                     WHERE id = (SELECT t.id FROM tasks t WHERE {READY} AND {AGENT_ACTIVE} \
                       ORDER BY {READY_ORDER} LIMIT 1) \
                     RETURNING {returning}, \
                       (SELECT group_concat(d.depends_on, ',') FROM task_dependencies d \
                        WHERE d.task_id = tasks.id) AS dependencies"
                );
                // The first statement writes, so the transaction takes the write lock at once
                // and cannot deadlock upgrading from a read.
                let mut tx = writer.begin().await?;
                let claimed = sqlx::query(&update)
                    .bind(agent_id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                match claimed {
                    None => None,
                    Some(row) => {
                        let assignment_id: i64 = sqlx::query_scalar(
                            "INSERT INTO assignments (task_id, agent_id, status, progress, note, \
                             assigned_at, updated_at) VALUES ($1, $2, 'active', 0, '', $3, $3) \
                             RETURNING id",
                        )
                        .bind(rows::Columns::int(&row, "id")?)
                        .bind(agent_id)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        Some(claim_from(&row, assignment_id, agent_id, now)?)
                    }
                }
            }
        };
        if claim.is_none() {
            // Nothing claimed: say why if it is the agent, else nothing is ready.
            self.require_active_agent(agent_id).await?;
        }
        Ok(claim)
    }

    /// Assigns a specific task; refused with a conflict unless the task is ready.
    pub async fn assign(&self, task_id: i64, agent_id: &str) -> Result<Claim, StoreError> {
        self.require_active_agent(agent_id).await?;
        let now = now_ms();
        let returning = rows::returning(TASK_COLUMNS);
        let update = format!(
            "UPDATE tasks AS t SET status = 'in_progress', assigned_agent = $2, progress = 0, \
             updated_at = $3 WHERE t.id = $1 AND {READY} RETURNING {returning}"
        );
        let claim = on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(&update)
                .bind(task_id)
                .bind(agent_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                drop(tx);
                // Say why: a missing task is a 404, anything else is a state conflict.
                let task = self.task(task_id).await?;
                return Err(StoreError::conflict(format!(
                    "task {task_id} is not ready (status `{}`{})",
                    task.status,
                    if task.status == TaskStatus::Pending { ", a dependency is not done" } else { "" }
                )));
            };
            let assignment_id: i64 = sqlx::query_scalar(
                "INSERT INTO assignments (task_id, agent_id, status, progress, note, \
                 assigned_at, updated_at) VALUES ($1, $2, 'active', 0, '', $3, $3) RETURNING id",
            )
            .bind(task_id)
            .bind(agent_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            claim_from(&row, assignment_id, agent_id, now)?
        });
        let mut claim = claim;
        claim.task.depends_on = self.dependencies_of(task_id).await?;
        Ok(claim)
    }

    /// Reports progress on an active assignment and, with a final status, ends it:
    /// `completed` finishes the task (or sends it to review), `failed` / `released` give it
    /// back to the queue (`failed` counts against the task, see [`MAX_FAILURES`]). An assignment that is no longer active is a conflict: its task may
    /// already belong to someone else.
    pub async fn update_assignment(
        &self,
        id: i64,
        progress: i64,
        status: AssignmentStatus,
        note: Option<&str>,
        review: bool,
    ) -> Result<Assignment, StoreError> {
        let now = now_ms();
        let progress = if status == AssignmentStatus::Completed {
            100
        } else {
            progress
        };
        let returning = rows::returning(ASSIGNMENT_COLUMNS);
        let sql = format!(
            "UPDATE assignments AS a SET progress = $2, status = $3, note = COALESCE($4, a.note), \
             updated_at = $5 WHERE a.id = $1 AND a.status = 'active' RETURNING {returning}"
        );
        let task_status = match status {
            AssignmentStatus::Active => TaskStatus::InProgress,
            AssignmentStatus::Completed if review => TaskStatus::Review,
            AssignmentStatus::Completed => TaskStatus::Done,
            AssignmentStatus::Failed | AssignmentStatus::Released | AssignmentStatus::Requeued => {
                TaskStatus::Pending
            }
        };
        let assignment = on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(&sql)
                .bind(id)
                .bind(progress)
                .bind(status.as_str())
                .bind(note)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                drop(tx);
                let current = self.assignment(id).await?;
                return Err(StoreError::conflict(format!(
                    "assignment {id} is `{}`, not active",
                    current.status
                )));
            };
            let assignment = rows::assignment(&row)?;
            let task_progress = if task_status == TaskStatus::Pending { 0 } else { progress };
            // A failure counts against the task; past MAX_FAILURES it is blocked, not requeued.
            sqlx::query(
                "UPDATE tasks SET failures = failures + $5, \
                 status = CASE WHEN $2 = 'pending' AND failures + $5 >= $6 THEN 'blocked' ELSE $2 END, \
                 progress = $3, \
                 assigned_agent = CASE WHEN $2 = 'pending' THEN NULL ELSE assigned_agent END, \
                 updated_at = $4 WHERE id = $1",
            )
            .bind(assignment.task_id)
            .bind(task_status.as_str())
            .bind(task_progress)
            .bind(now)
            .bind(i64::from(status == AssignmentStatus::Failed))
            .bind(MAX_FAILURES)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            assignment
        });
        Ok(assignment)
    }

    pub async fn assignment(&self, id: i64) -> Result<Assignment, StoreError> {
        let sql = format!("SELECT {ASSIGNMENT_COLUMNS} FROM assignments a WHERE a.id = $1");
        on_reader!(self, pool => sqlx::query(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|row| rows::assignment(&row))
            .transpose())?
        .ok_or_else(|| StoreError::not_found(format!("assignment {id}")))
    }

    pub async fn assignments(
        &self,
        agent_id: Option<&str>,
        status: Option<AssignmentStatus>,
    ) -> Result<Vec<Assignment>, StoreError> {
        let sql = format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments a \
             WHERE ($1 IS NULL OR a.agent_id = $1) AND ($2 IS NULL OR a.status = $2) ORDER BY a.id"
        );
        on_reader!(self, pool => sqlx::query(&sql)
            .bind(agent_id)
            .bind(status.map(AssignmentStatus::as_str))
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::assignment)
            .collect())
    }

    async fn require_active_agent(&self, agent_id: &str) -> Result<(), StoreError> {
        let status: Option<String> = on_reader!(self, pool => sqlx::query_scalar(
            "SELECT status FROM agents WHERE id = $1",
        )
        .bind(agent_id)
        .fetch_optional(pool)
        .await?);
        match status.as_deref() {
            None => Err(StoreError::not_found(format!(
                "agent `{agent_id}` (register it with a heartbeat first)"
            ))),
            Some("active") => Ok(()),
            Some(other) => Err(StoreError::conflict(format!(
                "agent `{agent_id}` is {other} and cannot take work"
            ))),
        }
    }
}

fn claim_from(
    row: &impl rows::Columns,
    assignment_id: i64,
    agent_id: &str,
    now: i64,
) -> Result<Claim, StoreError> {
    let mut task = rows::task(row)?;
    // Claims carry the dependencies as `1,2,3` (or nothing) from a subquery.
    if let Ok(Some(list)) = row.optional_text("dependencies") {
        task.depends_on = list
            .split(',')
            .filter_map(|id| id.trim().parse().ok())
            .collect();
        task.depends_on.sort_unstable();
    }
    Ok(Claim {
        assignment: Assignment {
            id: assignment_id,
            task_id: task.id,
            agent_id: agent_id.to_owned(),
            status: AssignmentStatus::Active,
            progress: 0,
            note: String::new(),
            assigned_at: now,
            updated_at: now,
        },
        task,
    })
}
