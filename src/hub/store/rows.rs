//! Decoding rows into the model, once for both databases: `Columns` hides which row type a
//! query returned.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::StoreError;
use crate::hub::model::{Agent, Assignment, Evidence, ProgressSnapshot, Task};

/// A column list without its table alias, for `RETURNING` (SQLite does not accept the alias
/// of an `INSERT` or `UPDATE` target there).
pub(crate) fn returning(columns: &str) -> String {
    columns
        .split(',')
        .map(|column| {
            column
                .trim()
                .split_once('.')
                .map_or(column.trim(), |(_, name)| name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) trait Columns {
    fn int(&self, name: &str) -> Result<i64, sqlx::Error>;
    fn real(&self, name: &str) -> Result<f64, sqlx::Error>;
    fn text(&self, name: &str) -> Result<String, sqlx::Error>;
    fn optional_text(&self, name: &str) -> Result<Option<String>, sqlx::Error>;
    fn optional_int(&self, name: &str) -> Result<Option<i64>, sqlx::Error>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn int(&self, name: &str) -> Result<i64, sqlx::Error> {
                self.try_get(name)
            }
            fn real(&self, name: &str) -> Result<f64, sqlx::Error> {
                self.try_get(name)
            }
            fn text(&self, name: &str) -> Result<String, sqlx::Error> {
                self.try_get(name)
            }
            fn optional_text(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(name)
            }
            fn optional_int(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(name)
            }
        }
    };
}

columns_for!(SqliteRow);
columns_for!(PgRow);

/// The task columns every task query selects, in the order `task` reads them.
pub(crate) const TASK_COLUMNS: &str = "t.id, t.project_id, t.key, t.epic, t.title, t.description, \
     t.estimate_hours, t.priority, t.status, t.progress, t.failures, t.workflow, t.branch, t.pr_url, \
     t.assigned_agent, t.created_at, t.updated_at, \
     t.environment, t.vars, \
     t.requires, t.timeout_ms, t.max_attempts, t.not_before";

/// Dependencies are filled in by the caller, which loads them in one query for many tasks.
pub(crate) fn task(row: &impl Columns) -> Result<Task, StoreError> {
    Ok(Task {
        id: row.int("id")?,
        project_id: row.int("project_id")?,
        key: row.text("key")?,
        epic: row.text("epic")?,
        title: row.text("title")?,
        description: row.text("description")?,
        estimate_hours: row.real("estimate_hours")?,
        priority: row.int("priority")?,
        status: row.text("status")?.parse()?,
        progress: row.int("progress")?,
        failures: row.int("failures")?,
        workflow: row.optional_text("workflow")?,
        environment: row.optional_text("environment")?,
        vars: task_vars(&row.text("vars")?)?,
        branch: row.optional_text("branch")?,
        pr_url: row.optional_text("pr_url")?,
        assigned_agent: row.optional_text("assigned_agent")?,
        depends_on: Vec::new(),
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        // Written by this hub as a JSON array of strings, like an agent's capabilities.
        requires: serde_json::from_str(&row.text("requires")?).unwrap_or_default(),
        timeout_ms: row.optional_int("timeout_ms")?,
        max_attempts: row.int("max_attempts")?,
        not_before: row.int("not_before")?,
    })
}

/// A task's `vars`, stored as a JSON object of strings (written by this hub).
fn task_vars(text: &str) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
    // Anything else means the database was edited behind the hub's back.
    serde_json::from_str(text).map_err(|err| {
        StoreError::with_source(
            super::StoreErrorKind::Database,
            "the database holds task `vars` that are not a JSON object of strings",
            err,
        )
    })
}

pub(crate) const AGENT_COLUMNS: &str =
    "ag.id, ag.host, ag.capabilities, ag.status, ag.last_heartbeat, ag.created_at";

pub(crate) fn agent(row: &impl Columns) -> Result<Agent, StoreError> {
    let capabilities = row.text("capabilities")?;
    Ok(Agent {
        id: row.text("id")?,
        host: row.text("host")?,
        // Written by this hub as a JSON array; anything else is read as no capabilities.
        capabilities: serde_json::from_str(&capabilities).unwrap_or_default(),
        status: row.text("status")?.parse()?,
        last_heartbeat: row.int("last_heartbeat")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) const ASSIGNMENT_COLUMNS: &str = "a.id, a.task_id, a.agent_id, a.status, a.progress, a.note, a.assigned_at, a.updated_at, \
     a.cancel_requested_at";

pub(crate) fn assignment(row: &impl Columns) -> Result<Assignment, StoreError> {
    Ok(Assignment {
        id: row.int("id")?,
        task_id: row.int("task_id")?,
        agent_id: row.text("agent_id")?,
        status: row.text("status")?.parse()?,
        progress: row.int("progress")?,
        note: row.text("note")?,
        assigned_at: row.int("assigned_at")?,
        updated_at: row.int("updated_at")?,
        cancel_requested: row.optional_int("cancel_requested_at")?.is_some(),
    })
}

pub(crate) const EVIDENCE_COLUMNS: &str =
    "e.id, e.task_id, e.agent_id, e.kind, e.reference, e.detail, e.created_at";

pub(crate) fn evidence(row: &impl Columns) -> Result<Evidence, StoreError> {
    Ok(Evidence {
        id: row.int("id")?,
        task_id: row.int("task_id")?,
        agent_id: row.optional_text("agent_id")?,
        kind: row.text("kind")?.parse()?,
        reference: row.text("reference")?,
        detail: row.text("detail")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) const SNAPSHOT_COLUMNS: &str = "s.id, s.project_id, s.total_tasks, s.done_tasks, \
     s.in_progress_tasks, s.total_hours, s.done_hours, s.active_agents, s.created_at";

pub(crate) fn snapshot(row: &impl Columns) -> Result<ProgressSnapshot, StoreError> {
    Ok(ProgressSnapshot {
        id: row.int("id")?,
        project_id: row.int("project_id")?,
        total_tasks: row.int("total_tasks")?,
        done_tasks: row.int("done_tasks")?,
        in_progress_tasks: row.int("in_progress_tasks")?,
        total_hours: row.real("total_hours")?,
        done_hours: row.real("done_hours")?,
        active_agents: row.int("active_agents")?,
        created_at: row.int("created_at")?,
    })
}
