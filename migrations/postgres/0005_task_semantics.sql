-- Task semantics: the capabilities a task requires (a JSON array of strings, like
-- `agents.capabilities`), how long one attempt may run, how many failed attempts it gets, and
-- when a failed task may be claimed again (exponential backoff; 0 = at once).
ALTER TABLE tasks ADD COLUMN requires TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN timeout_ms BIGINT;
ALTER TABLE tasks ADD COLUMN max_attempts BIGINT NOT NULL DEFAULT 3;
ALTER TABLE tasks ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0;
-- When the hub ended the assignment because its task's timeout passed; a late report from its
-- agent is refused, never taken as a repeat of the ending.
ALTER TABLE assignments ADD COLUMN timed_out_at BIGINT;
-- A task is ready only while nobody holds it, told by `assigned_agent IS NULL` (every way back
-- to `pending` clears it). Older hubs left it set when an operator put a finished task back.
UPDATE tasks SET assigned_agent = NULL
WHERE status = 'pending' AND assigned_agent IS NOT NULL
  AND id NOT IN (SELECT task_id FROM assignments WHERE status = 'active');
-- The claim's ordered scan: only rows the readiness rule can take, in hand-out order.
CREATE INDEX tasks_ready ON tasks (failures, priority DESC, id)
WHERE status = 'pending' AND assigned_agent IS NULL;
