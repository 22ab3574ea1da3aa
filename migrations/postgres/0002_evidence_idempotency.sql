-- A worker retrying a report after losing the hub's answer sends the same key again; the
-- evidence is kept once. Rows from before this migration have no key, and NULLs never collide.
ALTER TABLE evidence ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX evidence_idempotency ON evidence (task_id, idempotency_key);
