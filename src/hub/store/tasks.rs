//! Projects, tasks and their dependencies: importing a plan, listing, readiness, progress.

use std::collections::{BTreeMap, HashMap};

use super::rows::{self, TASK_COLUMNS};
use super::{Store, StoreError, StoreErrorKind, StoreKind, on_reader, on_writer};
use crate::hub::model::{DEFAULT_MAX_ATTEMPTS, Project, Task, TaskStatus, now_ms};

/// A task as a plan declares it; dependencies name other tasks of the same plan by key.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    pub key: String,
    pub epic: String,
    pub title: String,
    pub description: String,
    pub estimate_hours: f64,
    pub priority: i64,
    pub status: TaskStatus,
    pub workflow: Option<String>,
    /// The environment and variables the workflow runs with, as `--env` and `--var` give them.
    pub environment: Option<String>,
    pub vars: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
    // Task semantics (claim rules), see `Task`.
    pub requires: Vec<String>,
    pub timeout_ms: Option<i64>,
    pub max_attempts: i64,
}

impl NewTask {
    /// A pending task of `epic`, titled by its key, with no estimate, priority, workflow,
    /// dependencies, required capabilities or timeout, and the default attempts; set the rest
    /// with struct update syntax.
    pub fn new(key: impl Into<String>, epic: impl Into<String>) -> NewTask {
        let key = key.into();
        NewTask {
            title: key.clone(),
            key,
            epic: epic.into(),
            description: String::new(),
            estimate_hours: 0.0,
            priority: 0,
            status: TaskStatus::Pending,
            workflow: None,
            environment: None,
            vars: BTreeMap::new(),
            depends_on: Vec::new(),
            requires: Vec::new(),
            timeout_ms: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// `vars` as stored: a JSON object of strings.
fn task_vars_json(vars: &BTreeMap<String, String>) -> String {
    serde_json::Value::Object(
        vars.iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect(),
    )
    .to_string()
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub epic: Option<String>,
    pub project_id: Option<i64>,
}

/// The order ready tasks are handed out in: tasks that failed less first, then by priority.
pub(crate) const READY_ORDER: &str = "t.failures, t.priority DESC, t.id";

/// `pending`, nobody holding it, its retry backoff over (`not_before` at or before the time
/// `now`, a placeholder of the statement) and every dependency `done`: the readiness rule, as
/// SQL over alias `t`.
///
/// A held task is never offered, so the one-active-assignment index can never refuse a row of
/// a claim batch (which would fail every claimer in it). Held is told by `assigned_agent`,
/// which every claim and assignment sets and every way back to `pending` clears (an ending
/// assignment, the reapers, an operator's status change, a retry), and which the partial index
/// `tasks_ready` covers: a lookup of the active assignments instead (`NOT IN`, or a correlated
/// `NOT EXISTS`) cost PostgreSQL with two replicas its p99 floor at 2,000 claims/s.
pub(crate) fn ready(now: &str) -> String {
    format!(
        "t.status = 'pending' AND t.assigned_agent IS NULL AND t.not_before <= {now} \
         AND NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks dep ON dep.id = d.depends_on \
         WHERE d.task_id = t.id AND dep.status <> 'done')"
    )
}

/// Every capability task `t` requires is among `capabilities` (an SQL expression for an
/// agent's JSON array), in the store's dialect. Tasks that require nothing skip the JSON work.
pub(crate) fn capable(kind: StoreKind, capabilities: &str) -> String {
    match kind {
        StoreKind::Postgres => {
            format!("(t.requires = '[]' OR t.requires::jsonb <@ ({capabilities})::jsonb)")
        }
        StoreKind::Sqlite => format!(
            "(t.requires = '[]' OR NOT EXISTS (SELECT 1 FROM json_each(t.requires) need \
             WHERE need.value NOT IN (SELECT had.value FROM json_each({capabilities}) had)))"
        ),
    }
}

impl Store {
    /// Creates or updates a project and its tasks in one transaction: all of the plan or none.
    /// Re-importing a plan updates descriptions and dependencies but keeps live statuses.
    pub async fn import_plan(
        &self,
        project: &str,
        repo_url: Option<&str>,
        tasks: &[NewTask],
    ) -> Result<Project, StoreError> {
        let now = now_ms();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(
                "INSERT INTO projects (name, repo_url, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET repo_url = excluded.repo_url \
                 RETURNING id, name, repo_url, created_at",
            )
            .bind(project)
            .bind(repo_url)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let project = Project {
                id: rows::Columns::int(&row, "id")?,
                name: rows::Columns::text(&row, "name")?,
                repo_url: rows::Columns::optional_text(&row, "repo_url")?,
                created_at: rows::Columns::int(&row, "created_at")?,
            };
            let mut ids = HashMap::new();
            for task in tasks {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO tasks (project_id, key, epic, title, description, estimate_hours, \
                     priority, status, progress, workflow, created_at, updated_at, \
                     environment, vars, requires, timeout_ms, max_attempts) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16) \
                     ON CONFLICT (project_id, key) DO UPDATE SET epic = excluded.epic, \
                     title = excluded.title, description = excluded.description, \
                     estimate_hours = excluded.estimate_hours, priority = excluded.priority, \
                     workflow = excluded.workflow, updated_at = excluded.updated_at, \
                     environment = excluded.environment, vars = excluded.vars, \
                     requires = excluded.requires, timeout_ms = excluded.timeout_ms, \
                     max_attempts = excluded.max_attempts \
                     RETURNING id",
                )
                .bind(project.id)
                .bind(&task.key)
                .bind(&task.epic)
                .bind(&task.title)
                .bind(&task.description)
                .bind(task.estimate_hours)
                .bind(task.priority)
                .bind(task.status.as_str())
                .bind(if task.status == TaskStatus::Done { 100_i64 } else { 0 })
                .bind(task.workflow.as_deref())
                .bind(now)
                .bind(task.environment.as_deref())
                .bind(task_vars_json(&task.vars))
                .bind(capability_list(&task.requires)?)
                .bind(task.timeout_ms)
                .bind(task.max_attempts)
                .fetch_one(&mut *tx)
                .await?;
                ids.insert(task.key.as_str(), id);
            }
            for task in tasks {
                // Every key was inserted by the loop above.
                let Some(&id) = ids.get(task.key.as_str()) else {
                    continue;
                };
                sqlx::query("DELETE FROM task_dependencies WHERE task_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for dependency in &task.depends_on {
                    let Some(depends_on) = ids.get(dependency.as_str()) else {
                        return Err(StoreError::new(
                            StoreErrorKind::Invalid,
                            format!("task `{}` depends on unknown task `{dependency}`", task.key),
                        ));
                    };
                    sqlx::query(
                        "INSERT INTO task_dependencies (task_id, depends_on) VALUES ($1, $2)",
                    )
                    .bind(id)
                    .bind(depends_on)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(project)
        })
    }

    pub async fn projects(&self) -> Result<Vec<Project>, StoreError> {
        on_reader!(self, pool => sqlx::query(
            "SELECT id, name, repo_url, created_at FROM projects ORDER BY id",
        )
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Project {
                id: rows::Columns::int(row, "id")?,
                name: rows::Columns::text(row, "name")?,
                repo_url: rows::Columns::optional_text(row, "repo_url")?,
                created_at: rows::Columns::int(row, "created_at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>())
    }

    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks t \
             WHERE ($1 IS NULL OR t.status = $1) AND ($2 IS NULL OR t.epic = $2) \
             AND ($3 IS NULL OR t.project_id = $3) ORDER BY t.id"
        );
        let status = filter.status.map(TaskStatus::as_str);
        let mut tasks = on_reader!(self, pool => sqlx::query(&sql)
            .bind(status)
            .bind(filter.epic.as_deref())
            .bind(filter.project_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::task)
            .collect::<Result<Vec<_>, _>>())?;
        self.fill_dependencies(&mut tasks).await?;
        Ok(tasks)
    }

    pub async fn task(&self, id: i64) -> Result<Task, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = $1");
        let task = on_reader!(self, pool => sqlx::query(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|row| rows::task(&row))
            .transpose())?;
        let mut task = task.ok_or_else(|| StoreError::not_found(format!("task {id}")))?;
        task.depends_on = self.dependencies_of(id).await?;
        Ok(task)
    }

    /// Tasks a worker may start now: pending, unheld, past any retry backoff and with every
    /// dependency done, in claim order (whichever agent's capabilities they need).
    pub async fn ready_tasks(&self) -> Result<Vec<Task>, StoreError> {
        let ready = ready("$1");
        let sql =
            format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE {ready} ORDER BY {READY_ORDER}");
        let mut tasks = on_reader!(self, pool => sqlx::query(&sql)
            .bind(now_ms())
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::task)
            .collect::<Result<Vec<_>, _>>())?;
        self.fill_dependencies(&mut tasks).await?;
        Ok(tasks)
    }

    /// Sets a task's progress and, optionally, its status (an operator's override).
    ///
    /// A status change is refused while an agent holds the task, and `in_progress` is refused
    /// on a task nobody holds: either would leave the task and its assignments telling
    /// different stories. Ending the assignment instead would take work away from an agent
    /// without saying whether it failed or was released (which counts towards its
    /// `max_attempts`); the assignment's own endpoint says that, and the conflict's message
    /// names it. Back to `pending`, the task forgets the agent that last held it, so it is
    /// ready again (see `ready`).
    pub async fn update_task_progress(
        &self,
        id: i64,
        progress: i64,
        status: Option<TaskStatus>,
    ) -> Result<Task, StoreError> {
        // `t.status <> 'in_progress'` as well as the assignment lookup: PostgreSQL re-checks the
        // row's own columns after waiting on a concurrent claim's lock, but its subquery still
        // reads the snapshot from before that claim.
        let changed = on_writer!(self, pool => sqlx::query(
            "UPDATE tasks AS t SET progress = $2, status = COALESCE($3, t.status), updated_at = $4, \
             assigned_agent = CASE WHEN $3 = 'pending' THEN NULL ELSE t.assigned_agent END \
             WHERE t.id = $1 AND ($3 IS NULL OR $3 = t.status OR ($3 <> 'in_progress' \
             AND t.status <> 'in_progress' AND NOT EXISTS (SELECT 1 FROM assignments held \
             WHERE held.task_id = t.id AND held.status = 'active')))",
        )
        .bind(id)
        .bind(progress)
        .bind(status.map(TaskStatus::as_str))
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected());
        if changed == 0 {
            return Err(self.status_change_refused(id, status).await);
        }
        self.task(id).await
    }

    /// Why a task's status could not be changed: it does not exist, an agent holds it, or
    /// `in_progress` was asked for without an agent.
    async fn status_change_refused(&self, id: i64, status: Option<TaskStatus>) -> StoreError {
        let task = match self.task(id).await {
            Ok(task) => task,
            Err(err) => return err,
        };
        let wanted = status.unwrap_or(task.status);
        match self.active_assignment_of(id).await {
            Err(err) => err,
            Ok(Some(held)) => StoreError::conflict(format!(
                "task {id} is held by agent `{}` (assignment {}), so its status stays `{}`; \
                 end the assignment first (PATCH /api/assignments/{}/progress with status \
                 `released` or `failed`), then set the task to `{wanted}`",
                held.agent_id, held.id, task.status, held.id
            )),
            Ok(None) if wanted == TaskStatus::InProgress => StoreError::conflict(format!(
                "task {id} cannot be set to `in_progress` by hand: a task is in progress while \
                 an agent holds it; assign it (POST /api/assignments) instead"
            )),
            // The holder let go between the update and this look: the caller may try again.
            Ok(None) => StoreError::conflict(format!(
                "task {id} changed while its status was being set; try again"
            )),
        }
    }

    /// Puts a `blocked` task back in the queue with its attempts and backoff reset; a conflict
    /// unless the task is blocked (so a retry can never touch work in flight).
    pub async fn retry_task(&self, id: i64) -> Result<Task, StoreError> {
        let changed = on_writer!(self, pool => sqlx::query(
            "UPDATE tasks SET status = 'pending', failures = 0, not_before = 0, progress = 0, \
             assigned_agent = NULL, updated_at = $2 WHERE id = $1 AND status = 'blocked'",
        )
        .bind(id)
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected());
        let task = self.task(id).await?;
        if changed == 0 {
            return Err(StoreError::conflict(format!(
                "task {id} is `{}`, not blocked: only a blocked task can be retried",
                task.status
            )));
        }
        Ok(task)
    }

    /// A task in review whose pull request ended: merged, it is `done` (its dependents become
    /// ready); closed without merging, it is `blocked`, so an operator decides (`retry` runs it
    /// again). A conflict unless the task is in review.
    pub async fn end_review(&self, id: i64, merged: bool) -> Result<Task, StoreError> {
        let status = if merged {
            TaskStatus::Done
        } else {
            TaskStatus::Blocked
        };
        let changed = on_writer!(self, pool => sqlx::query(
            "UPDATE tasks SET status = $2, updated_at = $3 WHERE id = $1 AND status = 'review'",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected());
        let task = self.task(id).await?;
        if changed == 0 {
            return Err(StoreError::conflict(format!(
                "task {id} is `{}`, not in review: only a task in review has a pull request to end",
                task.status
            )));
        }
        Ok(task)
    }

    /// Records the branch and pull request a task's work lives on.
    pub async fn update_task_git(
        &self,
        id: i64,
        branch: Option<&str>,
        pr_url: Option<&str>,
    ) -> Result<Task, StoreError> {
        let changed = on_writer!(self, pool => sqlx::query(
            "UPDATE tasks SET branch = COALESCE($2, branch), pr_url = COALESCE($3, pr_url), \
             updated_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(branch)
        .bind(pr_url)
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected());
        if changed == 0 {
            return Err(StoreError::not_found(format!("task {id}")));
        }
        self.task(id).await
    }

    /// Tasks in review with a pull request: what the merge queue holds, oldest first.
    pub async fn merge_queue(&self) -> Result<Vec<Task>, StoreError> {
        self.tasks_where("t.status = 'review' AND t.pr_url IS NOT NULL ORDER BY t.updated_at, t.id")
            .await
    }

    /// Tasks with a branch that is still being worked on or reviewed.
    pub async fn active_branches(&self) -> Result<Vec<Task>, StoreError> {
        self.tasks_where(
            "t.branch IS NOT NULL AND t.status IN ('in_progress', 'review') ORDER BY t.branch",
        )
        .await
    }

    async fn tasks_where(&self, condition: &'static str) -> Result<Vec<Task>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE {condition}");
        let mut tasks = on_reader!(self, pool => sqlx::query(&sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::task)
            .collect::<Result<Vec<_>, _>>())?;
        self.fill_dependencies(&mut tasks).await?;
        Ok(tasks)
    }

    pub(crate) async fn dependencies_of(&self, id: i64) -> Result<Vec<i64>, StoreError> {
        let ids = on_reader!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT depends_on FROM task_dependencies WHERE task_id = $1 ORDER BY depends_on",
        )
        .bind(id)
        .fetch_all(pool)
        .await?);
        Ok(ids)
    }

    async fn fill_dependencies(&self, tasks: &mut [Task]) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(i64, i64)> = on_reader!(self, pool => sqlx::query_as(
            "SELECT task_id, depends_on FROM task_dependencies ORDER BY task_id, depends_on",
        )
        .fetch_all(pool)
        .await?);
        let mut by_task: HashMap<i64, Vec<i64>> = HashMap::new();
        for (task, depends_on) in pairs {
            by_task.entry(task).or_default().push(depends_on);
        }
        for task in tasks {
            task.depends_on = by_task.remove(&task.id).unwrap_or_default();
        }
        Ok(())
    }
}

/// Capabilities as stored: a JSON array of strings, the encoding agents' capabilities share.
pub(crate) fn capability_list(capabilities: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(capabilities).map_err(|err| {
        StoreError::with_source(StoreErrorKind::Invalid, "unencodable capabilities", err)
    })
}
