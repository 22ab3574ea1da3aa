//! Assignments: the atomic claim, manual assignment, and progress up to completion or
//! give-back. A task is never assigned twice: every change is guarded by the task's status in
//! the same statement, and a partial unique index allows one active assignment per task.

use std::collections::HashMap;

use super::rows::{self, ASSIGNMENT_COLUMNS, TASK_COLUMNS};
use super::tasks::{READY_ORDER, capable, ready};
use super::{Backend, Store, StoreError, StoreErrorKind, StoreKind, on_reader, on_writer};
use crate::hub::model::{Assignment, AssignmentStatus, Claim, TaskStatus, now_ms};

/// A task after its assignment ended: `$2` its new status (`pending` gives it back), `$3` its
/// progress, `$4` now, `$5` 1 for a failed attempt. A failure counts against the task: at its
/// `max_attempts` it is `blocked`, else it waits `$6` ms doubled per earlier failure, at most
/// `$7` ms, before it is ready again. Giving it back forgets its agent (see [`ready`]).
const TASK_AFTER_ATTEMPT: &str = "UPDATE tasks SET failures = failures + $5, \
     status = CASE WHEN $2 = 'pending' AND failures + $5 >= max_attempts THEN 'blocked' ELSE $2 END, \
     not_before = CASE WHEN $5 = 1 THEN $4 + CASE \
       WHEN failures >= 30 OR (CAST($6 AS BIGINT) << CAST(failures AS INTEGER)) > $7 THEN $7 \
       ELSE CAST($6 AS BIGINT) << CAST(failures AS INTEGER) END \
     ELSE not_before END, \
     progress = $3, \
     assigned_agent = CASE WHEN $2 IN ('pending', 'blocked') THEN NULL ELSE assigned_agent END, \
     updated_at = $4 WHERE id = $1";

impl Store {
    /// Hands the best ready task this agent is capable of to `agent_id`, or `None` when
    /// nothing is ready for it.
    ///
    /// Concurrent claims are answered together, a batch per database round trip (see
    /// `claim_queue.rs`).
    pub async fn claim(&self, agent_id: &str) -> Result<Option<Claim>, StoreError> {
        let claim = match &self.claims {
            Some(queue) => queue.claim(agent_id).await?,
            None => self.claim_batch(&[agent_id]).await?.pop(),
        };
        if claim.is_none() {
            // Nothing claimed: say why if it is the agent, else nothing is ready.
            self.require_active_agent(agent_id).await?;
        }
        Ok(claim)
    }

    /// Claims for several agents at once: each active agent of `agents`, in that order, gets a
    /// different ready task that requires nothing it lacks, best first, while tasks last;
    /// agents that may not take work get nothing. An agent named twice gets two tasks. A task
    /// somebody holds, or whose retry backoff is not over, is never a candidate (see
    /// `ready`), so no row can trip the one-active-assignment index and fail the batch.
    ///
    /// Claimers are grouped by their capabilities, and the groups take turns in the order their
    /// first claimer asked: the n-th claimer of a group gets the n-th best task that group may
    /// take among those the earlier groups left. One round trip to the database.
    ///
    /// PostgreSQL: one statement; `FOR UPDATE SKIP LOCKED` lets concurrent batches (from any
    /// number of hub replicas) each take different rows without waiting on each other.
    /// SQLite: one transaction on the single writer connection, which serializes batches, with
    /// one statement per capability group in turn.
    pub async fn claim_batch(&self, agents: &[&str]) -> Result<Vec<Claim>, StoreError> {
        let now = now_ms();
        let ready = ready("$2");
        match &self.backend {
            Backend::Postgres(pool) => {
                let capable = capable(StoreKind::Postgres, "g.capabilities");
                // One statement for every group, so a batch is one round trip however many
                // groups it has (a statement per group, or another pass for claimers whose
                // group picked a task an earlier group also picked, cost PostgreSQL most of its
                // claim rate). Each group locks its best `reach` ready tasks, its own size plus
                // the earlier groups' (its own locks do not make it skip a row another group
                // locked, so that is all the earlier groups can take from it), through the
                // `tasks_ready` index in its order with the capability, backoff and dependency
                // checks as filters, so the scan stops after `reach` rows. The groups then take
                // their turns over those rows in a recursive step that carries the tasks taken
                // so far, and each group's claimers are zipped with its picks by position
                // (arrays, not a join on row numbers, which PostgreSQL's generic plan ran as a
                // nested loop re-sorting the requests per row).
                let sql = format!(
                    "WITH RECURSIVE requests AS ( \
                       SELECT r.agent_id, r.position, ag.capabilities \
                       FROM unnest($1::text[]) WITH ORDINALITY AS r(agent_id, position) \
                       JOIN agents ag ON ag.id = r.agent_id AND ag.status = 'active' \
                     ), groups AS MATERIALIZED ( \
                       SELECT capabilities, array_agg(agent_id ORDER BY position) AS agents, \
                         row_number() OVER (ORDER BY min(position)) AS turn, \
                         sum(count(*)) OVER (ORDER BY min(position))::bigint AS reach \
                       FROM requests GROUP BY capabilities \
                     ), locked AS MATERIALIZED ( \
                       SELECT g.turn, c.id, c.failures, c.priority FROM groups g \
                       CROSS JOIN LATERAL ( \
                         SELECT t.id, t.failures, t.priority FROM tasks t \
                         WHERE {ready} AND {capable} \
                         ORDER BY {READY_ORDER} LIMIT g.reach FOR UPDATE OF t SKIP LOCKED \
                       ) c \
                     ), turns (turn, picked, taken) AS ( \
                       SELECT 0::bigint, '{{}}'::bigint[], '{{}}'::bigint[] \
                       UNION ALL \
                       SELECT g.turn, p.ids, turns.taken || p.ids FROM turns \
                       JOIN groups g ON g.turn = turns.turn + 1 \
                       CROSS JOIN LATERAL (SELECT ARRAY( \
                         SELECT t.id FROM locked t \
                         WHERE t.turn = g.turn AND t.id <> ALL (turns.taken) \
                         ORDER BY {READY_ORDER} LIMIT cardinality(g.agents)) AS ids) p \
                     ), pairs AS ( \
                       SELECT pair.task_id, pair.agent_id \
                       FROM turns JOIN groups g ON g.turn = turns.turn \
                       CROSS JOIN LATERAL unnest(turns.picked, g.agents) AS pair(task_id, agent_id) \
                       WHERE pair.task_id IS NOT NULL AND pair.agent_id IS NOT NULL \
                     ), claimed AS ( \
                       UPDATE tasks AS t SET status = 'in_progress', \
                         assigned_agent = pairs.agent_id, progress = 0, updated_at = $2 \
                       FROM pairs WHERE t.id = pairs.task_id RETURNING {TASK_COLUMNS} \
                     ), assigned AS ( \
                       INSERT INTO assignments (task_id, agent_id, status, progress, note, \
                         assigned_at, updated_at) \
                       SELECT id, assigned_agent, 'active', 0, '', $2, $2 FROM claimed \
                       RETURNING id AS assignment_id, task_id \
                     ) SELECT claimed.*, assigned.assignment_id, \
                       (SELECT string_agg(d.depends_on::text, ',') FROM task_dependencies d \
                        WHERE d.task_id = claimed.id) AS dependencies \
                     FROM claimed JOIN assigned ON assigned.task_id = claimed.id"
                );
                sqlx::query(&sql)
                    .bind(agents)
                    .bind(now)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|row| claim_from(row, rows::Columns::int(row, "assignment_id")?, now))
                    .collect()
            }
            Backend::Sqlite { writer, reader } => {
                // Requests are numbered in arrival order and ready tasks in hand-out order; the
                // two numberings are joined, so the n-th claimer of the group gets the n-th best
                // task it may take.
                let pairs = format!(
                    "ranked_requests AS ( \
                       SELECT agent_id, row_number() OVER (ORDER BY position) AS n FROM requests \
                     ), picked AS ( \
                       SELECT t.id, row_number() OVER (ORDER BY {READY_ORDER}) AS n FROM locked t \
                     ), pairs AS ( \
                       SELECT picked.id AS task_id, r.agent_id \
                       FROM picked JOIN ranked_requests r ON r.n = picked.n \
                     )"
                );
                let requests = serde_json::to_string(agents).map_err(|err| {
                    StoreError::with_source(StoreErrorKind::Invalid, "unencodable agent id", err)
                })?;
                // Read before the transaction, which must start with a write (below). A group
                // whose agents changed capabilities meanwhile matches nobody, and they ask again.
                let groups: Vec<String> = sqlx::query_scalar(
                    "SELECT ag.capabilities FROM json_each($1) r \
                     JOIN agents ag ON ag.id = r.value AND ag.status = 'active' \
                     GROUP BY ag.capabilities ORDER BY min(r.key)",
                )
                .bind(&requests)
                .fetch_all(reader)
                .await?;
                let capable = capable(StoreKind::Sqlite, "$3");
                let returning = rows::returning(TASK_COLUMNS);
                let update = format!(
                    "WITH requests AS ( \
                       SELECT r.agent_id, r.position, ag.capabilities \
                       FROM (SELECT value AS agent_id, key AS position FROM json_each($1)) r \
                       JOIN agents ag ON ag.id = r.agent_id AND ag.status = 'active' \
                       WHERE ag.capabilities = $3 \
                     ), locked AS ( \
                       SELECT t.id, t.failures, t.priority, $3 AS capabilities FROM tasks t \
                       WHERE {ready} AND {capable} \
                       ORDER BY {READY_ORDER} LIMIT (SELECT count(*) FROM requests) \
                     ), {pairs} \
                     UPDATE tasks SET status = 'in_progress', assigned_agent = pairs.agent_id, \
                       progress = 0, updated_at = $2 \
                     FROM pairs WHERE tasks.id = pairs.task_id \
                     RETURNING {returning}, \
                       (SELECT group_concat(d.depends_on, ',') FROM task_dependencies d \
                        WHERE d.task_id = tasks.id) AS dependencies"
                );
                // The first statement writes, so the transaction takes the write lock at once
                // and cannot deadlock upgrading from a read.
                let mut tx = writer.begin().await?;
                let mut claimed = Vec::new();
                for capabilities in &groups {
                    claimed.extend(
                        sqlx::query(&update)
                            .bind(&requests)
                            .bind(now)
                            .bind(capabilities)
                            .fetch_all(&mut *tx)
                            .await?,
                    );
                }
                if claimed.is_empty() {
                    return Ok(Vec::new());
                }
                let task_ids = claimed
                    .iter()
                    .map(|row| rows::Columns::int(row, "id"))
                    .collect::<Result<Vec<_>, _>>()?;
                let assignment_ids: HashMap<i64, i64> = sqlx::query_as(
                    "INSERT INTO assignments (task_id, agent_id, status, progress, note, \
                     assigned_at, updated_at) \
                     SELECT t.id, t.assigned_agent, 'active', 0, '', $2, $2 FROM tasks t \
                     WHERE t.id IN (SELECT value FROM json_each($1)) \
                     RETURNING task_id, id AS assignment_id",
                )
                .bind(serde_json::Value::from(task_ids).to_string())
                .bind(now)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
                tx.commit().await?;
                claimed
                    .iter()
                    .map(|row| {
                        let task_id = rows::Columns::int(row, "id")?;
                        let assignment_id =
                            assignment_ids.get(&task_id).copied().ok_or_else(|| {
                                StoreError::new(
                                    StoreErrorKind::Database,
                                    format!("task {task_id} was claimed without an assignment"),
                                )
                            })?;
                        claim_from(row, assignment_id, now)
                    })
                    .collect()
            }
        }
    }

    /// Assigns a specific task; refused with a conflict unless the task is ready.
    pub async fn assign(&self, task_id: i64, agent_id: &str) -> Result<Claim, StoreError> {
        self.require_active_agent(agent_id).await?;
        let now = now_ms();
        let returning = rows::returning(TASK_COLUMNS);
        let ready = ready("$3");
        let capable = capable(
            self.kind(),
            "(SELECT ag.capabilities FROM agents ag WHERE ag.id = $2)",
        );
        let update = format!(
            "UPDATE tasks AS t SET status = 'in_progress', assigned_agent = $2, progress = 0, \
             updated_at = $3 WHERE t.id = $1 AND {ready} AND {capable} RETURNING {returning}"
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
                let missing = self.missing_capabilities(agent_id, &task.requires).await?;
                let why = match self.active_assignment_of(task_id).await? {
                    Some(held) => format!(", held by agent `{}`", held.agent_id),
                    None if !missing.is_empty() => format!(
                        ", it requires {} that agent `{agent_id}` lacks",
                        missing.join(", ")
                    ),
                    None if task.status == TaskStatus::Pending && task.not_before > now => format!(
                        ", waiting {} s to be retried after {} failure(s)",
                        (task.not_before - now + 999) / 1000,
                        task.failures
                    ),
                    None if task.status == TaskStatus::Pending => {
                        ", a dependency is not done".to_owned()
                    }
                    None => String::new(),
                };
                return Err(StoreError::conflict(format!(
                    "task {task_id} is not ready (status `{}`{why})",
                    task.status
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
            claim_from(&row, assignment_id, now)?
        });
        let mut claim = claim;
        claim.task.depends_on = self.dependencies_of(task_id).await?;
        Ok(claim)
    }

    /// Reports progress on an active assignment and, with a final status, ends it:
    /// `completed` finishes the task (or sends it to review), `failed` / `released` give it
    /// back to the queue (`failed` counts against the task's `max_attempts`). Reporting the
    /// ending an assignment already has is answered again (so a retry is safe); any other
    /// change to an assignment that is no longer active is a conflict: its task may already
    /// belong to someone else. Once a cancel is asked for, `cancelled` is the only ending
    /// accepted (it blocks the task until an operator puts it back), and it is accepted only then.
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
             updated_at = $5 WHERE a.id = $1 AND a.status = 'active' \
             AND ($3 = 'active' OR ((a.cancel_requested_at IS NOT NULL) = ($3 = 'cancelled'))) \
             RETURNING {returning}"
        );
        let task_status = match status {
            AssignmentStatus::Active => TaskStatus::InProgress,
            AssignmentStatus::Completed if review => TaskStatus::Review,
            AssignmentStatus::Completed => TaskStatus::Done,
            AssignmentStatus::Failed | AssignmentStatus::Released | AssignmentStatus::Requeued => {
                TaskStatus::Pending
            }
            // Back in the queue, another worker would start what an operator just stopped.
            AssignmentStatus::Cancelled => TaskStatus::Blocked,
        };
        on_writer!(self, pool => {
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
                return self.ended_assignment_report(id, status).await;
            };
            let assignment = rows::assignment(&row)?;
            let given_back = matches!(task_status, TaskStatus::Pending | TaskStatus::Blocked);
            let task_progress = if given_back { 0 } else { progress };
            sqlx::query(TASK_AFTER_ATTEMPT)
                .bind(assignment.task_id)
                .bind(task_status.as_str())
                .bind(task_progress)
                .bind(now)
                .bind(i64::from(status == AssignmentStatus::Failed))
                .bind(self.retry_backoff.base_ms())
                .bind(self.retry_backoff.cap_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(assignment)
        })
    }

    /// Why a report on an assignment that is no longer active is refused, or, for the same
    /// ending reported again (a retry whose first answer was lost), that ending as the first
    /// answer gave it. An assignment the hub timed out is never answered as a repeat: its task
    /// may already belong to someone else.
    async fn ended_assignment_report(
        &self,
        id: i64,
        status: AssignmentStatus,
    ) -> Result<Assignment, StoreError> {
        let current = self.assignment(id).await?;
        let timed_out_at: Option<i64> = on_reader!(self, pool => sqlx::query_scalar(
            "SELECT timed_out_at FROM assignments WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        .flatten());
        if timed_out_at.is_some() {
            return Err(StoreError::conflict(format!(
                "assignment {id} timed out: it ran past task {}'s timeout, so the hub failed it \
                 and put the task back in the queue; this `{status}` report is refused (the task \
                 may belong to another agent now; claim again for new work)",
                current.task_id
            )));
        }
        if current.status == status && status != AssignmentStatus::Active {
            return Ok(current);
        }
        Err(ending_refused(&current, status))
    }

    /// Fails every active assignment that has run past its task's timeout and gives the task
    /// back as a failed attempt would (backoff, or `blocked` at its `max_attempts`). Safe to
    /// run from every hub replica at once, and against a late report from the agent: each
    /// assignment ends once, whichever comes first, in one transaction with its task.
    pub async fn fail_timed_out(&self) -> Result<Vec<Assignment>, StoreError> {
        let now = now_ms();
        let returning = rows::returning(ASSIGNMENT_COLUMNS);
        let sql = format!(
            "UPDATE assignments AS a SET status = 'failed', timed_out_at = $1, updated_at = $1, \
             note = 'timed out: ran past its task''s timeout' \
             WHERE a.status = 'active' AND EXISTS (SELECT 1 FROM tasks t WHERE t.id = a.task_id \
             AND t.timeout_ms IS NOT NULL AND a.assigned_at + t.timeout_ms <= $1) \
             RETURNING {returning}"
        );
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let ended = sqlx::query(&sql)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(rows::assignment)
                .collect::<Result<Vec<_>, _>>()?;
            for assignment in &ended {
                sqlx::query(TASK_AFTER_ATTEMPT)
                    .bind(assignment.task_id)
                    .bind(TaskStatus::Pending.as_str())
                    .bind(0_i64)
                    .bind(now)
                    .bind(1_i64)
                    .bind(self.retry_backoff.base_ms())
                    .bind(self.retry_backoff.cap_ms())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(ended)
        })
    }

    /// How many assignments the hub has failed for running past their task's timeout.
    pub async fn timed_out_count(&self) -> Result<i64, StoreError> {
        let count = on_reader!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM assignments WHERE timed_out_at IS NOT NULL",
        )
        .fetch_one(pool)
        .await?);
        Ok(count)
    }

    /// Asks the worker of an active assignment to stop: it hears it in its next heartbeat or
    /// progress answer. Asking again is answered as the first time; an assignment that already
    /// ended (a completion that came first) is a conflict.
    pub async fn request_cancel(&self, id: i64) -> Result<Assignment, StoreError> {
        let returning = rows::returning(ASSIGNMENT_COLUMNS);
        let sql = format!(
            "UPDATE assignments AS a SET cancel_requested_at = COALESCE(a.cancel_requested_at, $2) \
             WHERE a.id = $1 AND a.status = 'active' RETURNING {returning}"
        );
        let row = on_writer!(self, pool => sqlx::query(&sql)
            .bind(id)
            .bind(now_ms())
            .fetch_optional(pool)
            .await?
            .map(|row| rows::assignment(&row))
            .transpose())?;
        if let Some(assignment) = row {
            return Ok(assignment);
        }
        let current = self.assignment(id).await?;
        if current.status == AssignmentStatus::Cancelled {
            return Ok(current);
        }
        Err(StoreError::conflict(format!(
            "assignment {id} already ended `{}`: there is nothing to cancel",
            current.status
        )))
    }

    /// The agent's active assignments that an operator asked to cancel.
    pub async fn cancels_for(&self, agent_id: &str) -> Result<Vec<i64>, StoreError> {
        let ids = on_reader!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT id FROM assignments WHERE agent_id = $1 AND status = 'active' \
             AND cancel_requested_at IS NOT NULL ORDER BY id",
        )
        .bind(agent_id)
        .fetch_all(pool)
        .await?);
        Ok(ids)
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

    /// The assignment that holds a task now, if any (at most one: a unique index says so).
    pub(crate) async fn active_assignment_of(
        &self,
        task_id: i64,
    ) -> Result<Option<Assignment>, StoreError> {
        let sql = format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments a \
             WHERE a.task_id = $1 AND a.status = 'active'"
        );
        on_reader!(self, pool => sqlx::query(&sql)
            .bind(task_id)
            .fetch_optional(pool)
            .await?
            .map(|row| rows::assignment(&row))
            .transpose())
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

    /// The capabilities of `requires` that `agent_id` did not register, in the task's order.
    async fn missing_capabilities(
        &self,
        agent_id: &str,
        requires: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if requires.is_empty() {
            return Ok(Vec::new());
        }
        let registered: Option<String> = on_reader!(self, pool => sqlx::query_scalar(
            "SELECT capabilities FROM agents WHERE id = $1",
        )
        .bind(agent_id)
        .fetch_optional(pool)
        .await?);
        // Written by this hub as a JSON array; anything else is read as no capabilities.
        let registered: Vec<String> = registered
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        Ok(requires
            .iter()
            .filter(|needed| !registered.contains(needed))
            .map(|needed| format!("`{needed}`"))
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

/// Why an ending of `current` (no longer active, or asked to cancel) was refused.
fn ending_refused(current: &Assignment, wanted: AssignmentStatus) -> StoreError {
    let id = current.id;
    let message = match (current.status, wanted) {
        (AssignmentStatus::Active, AssignmentStatus::Cancelled) => {
            format!("assignment {id} was not asked to cancel; end it another way")
        }
        (AssignmentStatus::Active, _) => format!(
            "assignment {id} was cancelled by an operator; report it `cancelled` \
             (no other ending is accepted)"
        ),
        (AssignmentStatus::Cancelled, _) => {
            format!("assignment {id} was cancelled: its `{wanted}` came too late")
        }
        (ended, _) => format!("assignment {id} is `{ended}`, not active"),
    };
    StoreError::conflict(message)
}

/// A claim from a just-claimed task row (which names its agent) and its new assignment.
fn claim_from(row: &impl rows::Columns, assignment_id: i64, now: i64) -> Result<Claim, StoreError> {
    let mut task = rows::task(row)?;
    let agent_id = task.assigned_agent.clone().ok_or_else(|| {
        StoreError::new(
            StoreErrorKind::Database,
            format!("task {} was claimed without an agent", task.id),
        )
    })?;
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
            agent_id,
            status: AssignmentStatus::Active,
            progress: 0,
            note: String::new(),
            assigned_at: now,
            updated_at: now,
            cancel_requested: false,
        },
        task,
    })
}
