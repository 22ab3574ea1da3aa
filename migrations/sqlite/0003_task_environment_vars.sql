-- The environment and variables a task's workflow runs with (`--env`, `--var KEY=VALUE`), so a
-- worker runs it exactly as `agent-orch run` would. `vars` is a JSON object of strings.
ALTER TABLE tasks ADD COLUMN environment TEXT;
ALTER TABLE tasks ADD COLUMN vars TEXT NOT NULL DEFAULT '{}';
