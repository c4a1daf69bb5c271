"""The runtime's fenced writes. Each one names the epoch its worker claimed; when it matches no
row, the worker has lost the run and must stop. Each is one statement: the run's row, the step
record and the events of one transition commit together.
"""

from __future__ import annotations

from sqlalchemy import text

_EVENTS = """
    INSERT INTO runtime_event (tenant_id, run_id, type, data, created_at)
    SELECT fence.tenant_id, :run_id, e.type, e.data, clock_timestamp()
    FROM fence, unnest(CAST(:event_types AS text[]), CAST(:event_data AS jsonb[]))
         WITH ORDINALITY AS e(type, data, n)
    ORDER BY e.n
"""

COMMIT_STEP = text(
    f"""
    WITH fence AS (
        UPDATE runtime_run SET
            next_seq = GREATEST(next_seq, :seq + 1),
            attempt = 0,
            recoveries = 0,
            waiting_for = NULL,
            worked_seconds = worked_seconds + :worked,
            -- clock_timestamp(), not now(): now() is when the step's transaction began, and a
            -- step that read its input first and then worked longer than the lease would
            -- commit a lease that had already run out, and the sweeper would take the run from
            -- its busy, healthy worker.
            lease_expires_at = clock_timestamp() + make_interval(secs => :ttl),
            updated_at = now(),
            state = COALESCE(CAST(:state AS jsonb), state)
        WHERE id = :run_id AND epoch = :epoch AND status = 'running'
        RETURNING tenant_id, cancel_requested
    ), step AS (
        INSERT INTO runtime_step (tenant_id, run_id, seq, name, kind, status, attempt, result,
                                  error, error_code, started_at, finished_at)
        SELECT tenant_id, :run_id, :seq, :name, :kind, :status, :attempt,
               CAST(:result AS jsonb), :error, :error_code, :started_at, :finished_at
        FROM fence
    ), events AS ({_EVENTS})
    SELECT cancel_requested FROM fence
    """
)

PARK = text(
    f"""
    WITH fence AS (
        UPDATE runtime_run SET
            status = :status,
            wake_at = CAST(:wake_at AS timestamptz),
            kicked_at = CASE WHEN :kicked THEN now() ELSE NULL END,
            attempt = :attempt,
            waiting_for = CAST(:waiting_for AS jsonb),
            worked_seconds = worked_seconds + :worked,
            error = :error,
            error_code = :error_code,
            lease_owner = NULL,
            lease_expires_at = NULL,
            updated_at = now(),
            state = COALESCE(CAST(:state AS jsonb), state)
        WHERE id = :run_id AND epoch = :epoch AND status = 'running'
        RETURNING tenant_id
    ), events AS ({_EVENTS})
    SELECT 1 FROM fence
    """
)

FINISH = text(
    f"""
    WITH fence AS (
        UPDATE runtime_run SET
            status = :status,
            state = COALESCE(CAST(:state AS jsonb), state),
            error = :error,
            error_code = :error_code,
            worked_seconds = worked_seconds + :worked,
            finished_at = now(),
            wake_at = NULL,
            waiting_for = NULL,
            lease_owner = NULL,
            lease_expires_at = NULL,
            updated_at = now()
        WHERE id = :run_id AND epoch = :epoch AND status = 'running'
        RETURNING tenant_id, parent_id
    ), tasks AS (
        UPDATE runtime_task SET status = 'cancelled'
        WHERE run_id = :run_id AND status = 'open' AND EXISTS (SELECT 1 FROM fence)
    ), events AS ({_EVENTS})
    SELECT parent_id FROM fence
    """
)

LOCK_FENCED = text(
    "SELECT cancel_requested FROM runtime_run "
    "WHERE id = :run_id AND epoch = :epoch AND status = 'running' FOR UPDATE"
)

NEXT_SIGNAL = text(
    """
    SELECT id, payload, sender_id, sender_role FROM runtime_signal
    WHERE run_id = :run_id AND name = :name AND consumed_seq IS NULL
    ORDER BY created_at, id
    LIMIT 1
    FOR UPDATE
    """
)

CONSUME_SIGNAL = text("UPDATE runtime_signal SET consumed_seq = :seq WHERE id = :id")
