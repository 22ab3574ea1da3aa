-- An operator may cancel a running assignment (POST /api/assignments/{id}/cancel): the hub
-- records when, tells the worker, and the worker ends the assignment `cancelled`. SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt with the new status allowed.
CREATE TABLE assignments_new (
    id INTEGER PRIMARY KEY,
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents (id),
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'completed', 'failed', 'released', 'requeued', 'cancelled')),
    progress BIGINT NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    note TEXT NOT NULL DEFAULT '',
    assigned_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    cancel_requested_at BIGINT
);
INSERT INTO assignments_new (id, task_id, agent_id, status, progress, note, assigned_at, updated_at)
    SELECT id, task_id, agent_id, status, progress, note, assigned_at, updated_at FROM assignments;
DROP TABLE assignments;
ALTER TABLE assignments_new RENAME TO assignments;
CREATE UNIQUE INDEX assignments_one_active_per_task ON assignments (task_id) WHERE status = 'active';
CREATE INDEX assignments_agent ON assignments (agent_id, status);
