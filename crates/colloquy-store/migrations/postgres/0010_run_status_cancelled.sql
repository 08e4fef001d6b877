-- Cancellation becomes a run status of its own. Runs cancelled before were stored as
-- `failed` with `"cancelled": true` in their result; they move to the new status.
UPDATE test_runs SET status = 'cancelled'
WHERE status = 'failed' AND result LIKE '%"cancelled":true%';
