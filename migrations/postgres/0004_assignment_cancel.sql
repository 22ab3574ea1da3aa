-- An operator may cancel a running assignment (POST /api/assignments/{id}/cancel): the hub
-- records when, tells the worker, and the worker ends the assignment `cancelled`.
ALTER TABLE assignments ADD COLUMN cancel_requested_at BIGINT;
ALTER TABLE assignments DROP CONSTRAINT assignments_status_check;
ALTER TABLE assignments ADD CONSTRAINT assignments_status_check
    CHECK (status IN ('active', 'completed', 'failed', 'released', 'requeued', 'cancelled'));
