"""A circuit breaker per model target, shared by every worker through the database.

After `threshold` failures in a row a target is skipped for `cool_down` seconds; then one call
is let through (half open): success closes the circuit, failure opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from quire.core.db import Database

THRESHOLD = 3
COOL_DOWN_SECONDS = 30.0


@dataclass
class CircuitBreaker:
    database: Database
    threshold: int = THRESHOLD
    cool_down: float = COOL_DOWN_SECONDS

    def allows(self, target: str) -> bool:
        """False while the target's circuit is open; claims the trial call when it half-opens."""
        with self.database.system_session() as session:
            row = session.execute(
                text(
                    "UPDATE agent_circuit SET retry_at = now() + make_interval(secs => :cool) "
                    "WHERE target = :target AND retry_at IS NOT NULL AND retry_at <= now() "
                    "RETURNING 'trial'"
                ),
                {"target": target, "cool": self.cool_down},
            ).first()
            if row is not None:
                session.commit()
                return True  # half open: this caller makes the trial call
            blocked = session.execute(
                text("SELECT 1 FROM agent_circuit WHERE target = :target AND retry_at > now()"),
                {"target": target},
            ).first()
            session.commit()
            return blocked is None

    def succeeded(self, target: str) -> None:
        with self.database.system_session() as session:
            session.execute(
                text(
                    "UPDATE agent_circuit SET failures = 0, retry_at = NULL, updated_at = now() "
                    "WHERE target = :t"
                ),
                {"t": target},
            )
            session.commit()

    def failed(self, target: str, reason: str) -> bool:
        """Count a failure; returns True when it opened the circuit."""
        with self.database.system_session() as session:
            row = session.execute(
                text(
                    """
                    INSERT INTO agent_circuit (target, failures, last_error, updated_at)
                    VALUES (:t, 1, :reason, now())
                    ON CONFLICT (target) DO UPDATE SET
                        failures = agent_circuit.failures + 1, last_error = :reason, updated_at = now(),
                        retry_at = CASE
                            WHEN agent_circuit.failures + 1 >= :threshold
                                THEN now() + make_interval(secs => :cool)
                            ELSE agent_circuit.retry_at END
                    RETURNING failures >= :threshold
                    """
                ),
                {"t": target, "reason": reason[:500], "threshold": self.threshold, "cool": self.cool_down},
            ).first()
            session.commit()
        return bool(row and row[0])

    def state(self, target: str) -> dict[str, object]:
        with self.database.system_session() as session:
            row = session.execute(
                text("SELECT failures, retry_at, last_error FROM agent_circuit WHERE target = :t"),
                {"t": target},
            ).first()
        if row is None:
            return {"state": "closed", "failures": 0}
        return {
            "state": "open" if row[1] else "closed",
            "failures": row[0],
            "retry_at": row[1],
            "last_error": row[2],
        }
