//! Agents: registration by heartbeat, health, deactivation, and re-queuing the work of agents
//! whose heartbeat stopped.

use super::rows::{self, AGENT_COLUMNS, ASSIGNMENT_COLUMNS};
use super::{Store, StoreError, on_reader, on_writer};
use crate::hub::model::{Agent, AgentHealth, AgentStatus, Assignment, now_ms};

impl Store {
    /// Registers an agent or refreshes its heartbeat. A deactivated agent stays deactivated:
    /// only an operator brings it back.
    pub async fn heartbeat(
        &self,
        id: &str,
        host: &str,
        capabilities: &[String],
    ) -> Result<Agent, StoreError> {
        let capabilities = serde_json::to_string(capabilities).unwrap_or_else(|_| "[]".into());
        let returning = rows::returning(AGENT_COLUMNS);
        let sql = format!(
            "INSERT INTO agents AS ag (id, host, capabilities, status, last_heartbeat, created_at) \
             VALUES ($1, $2, $3, 'active', $4, $4) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, \
             capabilities = excluded.capabilities, last_heartbeat = excluded.last_heartbeat, \
             status = CASE WHEN ag.status = 'deactivated' THEN 'deactivated' ELSE 'active' END \
             RETURNING {returning}"
        );
        let agent = on_writer!(self, pool => rows::agent(
            &sqlx::query(&sql)
                .bind(id)
                .bind(host)
                .bind(&capabilities)
                .bind(now_ms())
                .fetch_one(pool)
                .await?,
        ))?;
        Ok(agent)
    }

    /// Every agent with its load and health; healthy means active with a heartbeat younger
    /// than `timeout_ms`.
    pub async fn agents(&self, timeout_ms: i64) -> Result<Vec<AgentHealth>, StoreError> {
        self.agents_where("", None, timeout_ms).await
    }

    pub async fn agent(&self, id: &str, timeout_ms: i64) -> Result<AgentHealth, StoreError> {
        self.agents_where("WHERE ag.id = $1", Some(id), timeout_ms)
            .await?
            .pop()
            .ok_or_else(|| StoreError::not_found(format!("agent `{id}`")))
    }

    async fn agents_where(
        &self,
        condition: &'static str,
        id: Option<&str>,
        timeout_ms: i64,
    ) -> Result<Vec<AgentHealth>, StoreError> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS}, \
             (SELECT COUNT(*) FROM assignments a WHERE a.agent_id = ag.id AND a.status = 'active') \
               AS active_assignments, \
             (SELECT COUNT(*) FROM assignments a WHERE a.agent_id = ag.id AND a.status = 'completed') \
               AS completed_assignments \
             FROM agents ag {condition} ORDER BY ag.id"
        );
        let now = now_ms();
        let rows = on_reader!(self, pool => {
            let query = sqlx::query(&sql);
            let query = if id.is_some() { query.bind(id) } else { query };
            query
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    let agent = rows::agent(row)?;
                    Ok(AgentHealth {
                        healthy: agent.status == AgentStatus::Active
                            && now - agent.last_heartbeat <= timeout_ms,
                        active_assignments: rows::Columns::int(row, "active_assignments")?,
                        completed_assignments: rows::Columns::int(row, "completed_assignments")?,
                        agent,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        Ok(rows)
    }

    /// Takes an agent out of rotation and gives its active work back to the queue.
    pub async fn deactivate_agent(&self, id: &str) -> Result<(Agent, Vec<Assignment>), StoreError> {
        let now = now_ms();
        let returning = rows::returning(AGENT_COLUMNS);
        let sql = format!(
            "UPDATE agents AS ag SET status = 'deactivated' WHERE ag.id = $1 RETURNING {returning}"
        );
        let agent = on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                return Err(StoreError::not_found(format!("agent `{id}`")));
            };
            let agent = rows::agent(&row)?;
            tx.commit().await?;
            agent
        });
        let requeued = self
            .requeue_where("a.agent_id = $1", id.to_owned(), now, "agent deactivated")
            .await?;
        Ok((agent, requeued))
    }

    /// Marks agents silent for longer than `timeout_ms` offline and gives their active
    /// assignments back: the tasks become pending again. Safe to run from every hub replica at
    /// once: each row changes only while it is still active.
    pub async fn requeue_stale(&self, timeout_ms: i64) -> Result<Vec<Assignment>, StoreError> {
        let now = now_ms();
        let cutoff = now - timeout_ms;
        on_writer!(self, pool => sqlx::query(
            "UPDATE agents SET status = 'offline' WHERE status = 'active' AND last_heartbeat < $1",
        )
        .bind(cutoff)
        .execute(pool)
        .await?
        .rows_affected());
        self.requeue_where(
            "a.agent_id IN (SELECT id FROM agents WHERE last_heartbeat < $1 OR status <> 'active')",
            cutoff,
            now,
            "agent heartbeat timed out",
        )
        .await
    }

    /// Ends the active assignments matching `condition` (with `$1` bound to `argument`) as
    /// `requeued` and returns their tasks to `pending`, in one transaction.
    async fn requeue_where<A>(
        &self,
        condition: &'static str,
        argument: A,
        now: i64,
        note: &str,
    ) -> Result<Vec<Assignment>, StoreError>
    where
        A: Send + Clone,
        A: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
        A: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        let select = format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments a WHERE a.status = 'active' AND {condition}"
        );
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let stale = sqlx::query(&select)
                .bind(argument.clone())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(rows::assignment)
                .collect::<Result<Vec<_>, _>>()?;
            let mut requeued = Vec::with_capacity(stale.len());
            for mut assignment in stale {
                let ended = sqlx::query(
                    "UPDATE assignments SET status = 'requeued', note = $2, updated_at = $3 \
                     WHERE id = $1 AND status = 'active'",
                )
                .bind(assignment.id)
                .bind(note)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if ended == 0 {
                    continue;
                }
                sqlx::query(
                    "UPDATE tasks SET status = 'pending', assigned_agent = NULL, updated_at = $2 \
                     WHERE id = $1 AND status = 'in_progress'",
                )
                .bind(assignment.task_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                assignment.status = crate::hub::model::AssignmentStatus::Requeued;
                assignment.note = note.to_owned();
                assignment.updated_at = now;
                requeued.push(assignment);
            }
            tx.commit().await?;
            Ok(requeued)
        })
    }
}
