//! Progress: the summary with per-epic figures (the seed's `epic_progress` view), snapshots
//! for velocity, and their history.

use super::rows::{self, Columns, SNAPSHOT_COLUMNS};
use super::tasks::ready;
use super::{Store, StoreError, on_reader, on_writer};
use crate::hub::model::{EpicProgress, ProgressSnapshot, ProgressSummary, now_ms, percent};

/// Per-epic counts; `0.0` literals keep SQLite's sums real when every term is zero.
const EPIC_TOTALS: &str = "SELECT t.epic AS epic, COUNT(*) AS total_tasks, \
     COALESCE(SUM(CASE WHEN t.status = 'done' THEN 1 ELSE 0 END), 0) AS done_tasks, \
     COALESCE(SUM(CASE WHEN t.status = 'in_progress' THEN 1 ELSE 0 END), 0) AS in_progress_tasks, \
     COALESCE(SUM(t.estimate_hours), 0.0) AS total_hours, \
     COALESCE(SUM(CASE WHEN t.status = 'done' THEN t.estimate_hours ELSE 0.0 END), 0.0) AS done_hours \
     FROM tasks t WHERE ($1 IS NULL OR t.project_id = $1) GROUP BY t.epic ORDER BY t.epic";

impl Store {
    /// Overall and per-epic progress, optionally for one project.
    pub async fn progress_summary(
        &self,
        project_id: Option<i64>,
        heartbeat_timeout_ms: i64,
    ) -> Result<ProgressSummary, StoreError> {
        let epics = on_reader!(self, pool => sqlx::query(EPIC_TOTALS)
            .bind(project_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                let total_hours = row.real("total_hours")?;
                let done_hours = row.real("done_hours")?;
                Ok(EpicProgress {
                    epic: row.text("epic")?,
                    total_tasks: row.int("total_tasks")?,
                    done_tasks: row.int("done_tasks")?,
                    in_progress_tasks: row.int("in_progress_tasks")?,
                    total_hours,
                    done_hours,
                    percent: percent(done_hours, total_hours),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>())?;
        let counts: Vec<(String, i64)> = on_reader!(self, pool => sqlx::query_as(
            "SELECT t.status, COUNT(*) FROM tasks t WHERE ($1 IS NULL OR t.project_id = $1) \
             GROUP BY t.status",
        )
        .bind(project_id)
        .fetch_all(pool)
        .await?);
        let count = |status: &str| {
            counts
                .iter()
                .find(|(name, _)| name == status)
                .map_or(0, |(_, count)| *count)
        };
        let ready_sql = format!(
            "SELECT COUNT(*) FROM tasks t WHERE ($1 IS NULL OR t.project_id = $1) AND {}",
            ready("$2")
        );
        let ready_tasks: i64 = on_reader!(self, pool => sqlx::query_scalar(&ready_sql)
            .bind(project_id)
            .bind(now_ms())
            .fetch_one(pool)
            .await?);
        let active_agents = self.active_agent_count(heartbeat_timeout_ms).await?;
        let total_hours: f64 = epics.iter().map(|epic| epic.total_hours).sum();
        let done_hours: f64 = epics.iter().map(|epic| epic.done_hours).sum();
        Ok(ProgressSummary {
            total_tasks: counts.iter().map(|(_, count)| count).sum(),
            pending_tasks: count("pending"),
            ready_tasks,
            in_progress_tasks: count("in_progress"),
            review_tasks: count("review"),
            done_tasks: count("done"),
            blocked_tasks: count("blocked"),
            total_hours,
            done_hours,
            percent: percent(done_hours, total_hours),
            active_agents,
            epics,
        })
    }

    async fn active_agent_count(&self, heartbeat_timeout_ms: i64) -> Result<i64, StoreError> {
        let count = on_reader!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM agents WHERE status = 'active' AND last_heartbeat >= $1",
        )
        .bind(now_ms() - heartbeat_timeout_ms)
        .fetch_one(pool)
        .await?);
        Ok(count)
    }

    /// Records the project's progress now, for velocity over time.
    pub async fn snapshot(
        &self,
        project_id: i64,
        heartbeat_timeout_ms: i64,
    ) -> Result<ProgressSnapshot, StoreError> {
        let summary = self
            .progress_summary(Some(project_id), heartbeat_timeout_ms)
            .await?;
        if summary.total_tasks == 0 && !self.projects().await?.iter().any(|p| p.id == project_id) {
            return Err(StoreError::not_found(format!("project {project_id}")));
        }
        let returning = rows::returning(SNAPSHOT_COLUMNS);
        let sql = format!(
            "INSERT INTO progress_snapshots AS s (project_id, total_tasks, done_tasks, \
             in_progress_tasks, total_hours, done_hours, active_agents, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {returning}"
        );
        on_writer!(self, pool => rows::snapshot(
            &sqlx::query(&sql)
                .bind(project_id)
                .bind(summary.total_tasks)
                .bind(summary.done_tasks)
                .bind(summary.in_progress_tasks)
                .bind(summary.total_hours)
                .bind(summary.done_hours)
                .bind(summary.active_agents)
                .bind(now_ms())
                .fetch_one(pool)
                .await?,
        ))
    }

    /// When the project's latest snapshot was recorded (Unix ms), if ever.
    pub async fn latest_snapshot_at(&self, project_id: i64) -> Result<Option<i64>, StoreError> {
        let latest = on_reader!(self, pool => sqlx::query_scalar(
            "SELECT MAX(created_at) FROM progress_snapshots WHERE project_id = $1",
        )
        .bind(project_id)
        .fetch_one(pool)
        .await?);
        Ok(latest)
    }

    pub async fn progress_history(
        &self,
        project_id: i64,
    ) -> Result<Vec<ProgressSnapshot>, StoreError> {
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM progress_snapshots s WHERE s.project_id = $1 \
             ORDER BY s.created_at, s.id"
        );
        on_reader!(self, pool => sqlx::query(&sql)
            .bind(project_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::snapshot)
            .collect())
    }
}
