"""A circuit breaker per model target, shared by every worker through the database.

After `threshold` failures in a row a target is skipped for `cool_down` seconds; then one call
is let through (half open): success closes the circuit, failure opens it again.

The same row keeps the wait a target asked for (a 429's or a 503's Retry-After): until then no
run of the installation calls it, in this turn, the next, or another run; after it, every
caller may (it was no outage, so there is no trial call).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from quire.core.db import Database

THRESHOLD = 3
COOL_DOWN_SECONDS = 30.0


@dataclass(frozen=True)
class Blocked:
    """A target nobody may call for `seconds` more: its circuit is `open`, or it cools down."""

    open: bool
    seconds: float


@dataclass
class CircuitBreaker:
    database: Database
    threshold: int = THRESHOLD
    cool_down: float = COOL_DOWN_SECONDS

    def allows(self, target: str) -> bool:
        """False while the target's circuit is open or it cools down; claims the trial call when
        its circuit half-opens."""
        return self.blocked(target) is None

    def blocked(self, target: str) -> Blocked | None:
        """Why and for how long the target may not be called now (None: it may; when its circuit
        half-opens, this caller makes the trial call)."""
        with self.database.system_session() as session:
            row = session.execute(
                text(
                    "UPDATE agent_circuit SET retry_at = now() + make_interval(secs => :cool) "
                    "WHERE target = :target AND retry_at IS NOT NULL AND retry_at <= now() "
                    "AND failures >= :threshold "
                    "RETURNING 'trial'"
                ),
                {"target": target, "cool": self.cool_down, "threshold": self.threshold},
            ).first()
            if row is not None:
                session.commit()
                return None  # half open: this caller makes the trial call
            found = session.execute(
                text(
                    "SELECT failures >= :threshold, extract(epoch FROM retry_at - now()) "
                    "FROM agent_circuit WHERE target = :target AND retry_at > now()"
                ),
                {"target": target, "threshold": self.threshold},
            ).first()
            session.commit()
        if found is None:
            return None
        return Blocked(open=bool(found[0]), seconds=float(found[1]))

    def retry_after(self, target: str, seconds: float, reason: str) -> None:
        """Keep every caller away from the target for `seconds`, as it asked (never shortening a
        longer wait already recorded); its count of failures stays as it was."""
        with self.database.system_session() as session:
            session.execute(
                text(
                    """
                    INSERT INTO agent_circuit (target, failures, last_error, retry_at, updated_at)
                    VALUES (:t, 0, :reason, now() + make_interval(secs => :wait), now())
                    ON CONFLICT (target) DO UPDATE SET
                        last_error = :reason, updated_at = now(),
                        retry_at = GREATEST(
                            agent_circuit.retry_at, now() + make_interval(secs => :wait)
                        )
                    """
                ),
                {"t": target, "reason": reason[:500], "wait": seconds},
            )
            session.commit()

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
                            WHEN agent_circuit.failures + 1 >= :threshold THEN GREATEST(
                                agent_circuit.retry_at, now() + make_interval(secs => :cool)
                            )
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
                text(
                    "SELECT failures, retry_at, last_error, retry_at > now() "
                    "FROM agent_circuit WHERE target = :t"
                ),
                {"t": target},
            ).first()
        if row is None:
            return {"state": "closed", "failures": 0}
        if row[1] is not None and row[0] >= self.threshold:
            state = "open"
        else:
            state = "cooling_down" if row[3] else "closed"
        return {
            "state": state,
            "failures": row[0],
            "retry_at": row[1],
            "last_error": row[2],
        }
