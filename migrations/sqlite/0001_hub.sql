-- The hub's model on SQLite. Times are unix milliseconds (BIGINT) so both stores share one
-- encoding; statuses are checked here so no writer can invent one.
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    repo_url TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    epic TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    estimate_hours DOUBLE PRECISION NOT NULL DEFAULT 0,
    priority BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_progress', 'review', 'done', 'blocked')),
    progress BIGINT NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    -- Failed attempts: ready tasks that failed less go first; too many and the task is blocked.
    failures BIGINT NOT NULL DEFAULT 0,
    workflow TEXT,
    branch TEXT,
    pr_url TEXT,
    assigned_agent TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project_id, key)
);
CREATE INDEX tasks_status ON tasks (status, failures, priority DESC, id);

CREATE TABLE task_dependencies (
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on),
    CHECK (task_id <> depends_on)
);
CREATE INDEX task_dependencies_depends_on ON task_dependencies (depends_on);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL DEFAULT '',
    capabilities TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'offline', 'deactivated')),
    last_heartbeat BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE assignments (
    id INTEGER PRIMARY KEY,
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents (id),
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'completed', 'failed', 'released', 'requeued')),
    progress BIGINT NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    note TEXT NOT NULL DEFAULT '',
    assigned_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- The last line of defence against double assignment: one active assignment per task.
CREATE UNIQUE INDEX assignments_one_active_per_task ON assignments (task_id) WHERE status = 'active';
CREATE INDEX assignments_agent ON assignments (agent_id, status);

CREATE TABLE evidence (
    id INTEGER PRIMARY KEY,
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    agent_id TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('commit', 'pr', 'test', 'build', 'patch', 'junit')),
    reference TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX evidence_task ON evidence (task_id);

CREATE TABLE progress_snapshots (
    id INTEGER PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    total_tasks BIGINT NOT NULL,
    done_tasks BIGINT NOT NULL,
    in_progress_tasks BIGINT NOT NULL,
    total_hours DOUBLE PRECISION NOT NULL,
    done_hours DOUBLE PRECISION NOT NULL,
    active_agents BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX progress_snapshots_project ON progress_snapshots (project_id, created_at);
