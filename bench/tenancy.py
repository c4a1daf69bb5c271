"""What a signed tenant context costs a statement.

Three copies of one table with the same rows (1,000 tenants x 50 rows), looked up by primary key
and listed by tenant as the role `quire_app`, inside one transaction per run:
- `bench_plain`: no row-level security (what a superuser login saw);
- `bench_unsigned`: the policy before issue 16, the setting alone (`current_setting(...)::uuid`);
- `bench_signed`: today's policy, `tenant_id = (SELECT quire_current_tenant())`, which checks
  the context's HMAC once per statement.

    .venv/bin/python bench/tenancy.py [--statements 3000]

Prints p50/p95 per statement of each, measured in the same run on the same connection.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quire.app.bootstrap import migrate
from quire.core import contexts
from quire.core.db import libpq_url
from quire.core.embedded import EmbeddedPostgres

TENANTS, ROWS = 1000, 50
TABLES = ("bench_plain", "bench_unsigned", "bench_signed")


def setup(conn: psycopg.Connection[object]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    tenants = [uuid.uuid4() for _ in range(TENANTS)]
    rows = [(uuid.uuid4(), t, f"row {i} of {t}") for t in tenants for i in range(ROWS)]
    for table in TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, body text)")
        conn.execute(f"CREATE INDEX ON {table} (tenant_id)")
        with conn.cursor().copy(f"COPY {table} (id, tenant_id, body) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.execute(f"GRANT SELECT ON {table} TO quire_app")
    conn.execute("ALTER TABLE bench_unsigned ENABLE ROW LEVEL SECURITY")
    conn.execute(
        "CREATE POLICY p ON bench_unsigned USING "
        "(tenant_id = NULLIF(current_setting('quire.tenant_id', true), '')::uuid)"
    )
    conn.execute("ALTER TABLE bench_signed ENABLE ROW LEVEL SECURITY")
    conn.execute("CREATE POLICY p ON bench_signed USING (tenant_id = (SELECT quire_current_tenant()))")
    for table in TABLES:
        conn.execute(f"ANALYZE {table}")
    return [(row[0], row[1]) for row in rows[:: ROWS * 10]]


def measure(
    conn: psycopg.Connection[object], key: bytes, probes: list[tuple[uuid.UUID, uuid.UUID]], statements: int
) -> dict[str, tuple[list[float], list[float]]]:
    results: dict[str, tuple[list[float], list[float]]] = {t: ([], []) for t in TABLES}
    for n in range(statements):
        row_id, tenant = probes[n % len(probes)]
        for table in TABLES:
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('role', 'quire_app', true), set_config('quire.tenant_id', %s, true), "
                    "set_config('quire.context', %s, true)",
                    (str(tenant), contexts.tenant_proof(key, tenant)),
                )
                started = time.perf_counter()
                found = conn.execute(f"SELECT body FROM {table} WHERE id = %s", (row_id,)).fetchone()
                point = time.perf_counter() - started
                started = time.perf_counter()
                listed = conn.execute(
                    f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (tenant,)
                ).fetchone()
                listing = time.perf_counter() - started
                assert found is not None and listed == (ROWS,), (table, found, listed)
            results[table][0].append(point)
            results[table][1].append(listing)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=3000)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="quire-bench-tenancy-"))
    server = EmbeddedPostgres(data)
    url, _ = server.start()
    try:
        migrate(url)
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            key = contexts.read_key(conn)
            probes = setup(conn)
            measure(conn, key, probes, 200)  # warm the caches and the plans
            results = measure(conn, key, probes, args.statements)
        print(f"{args.statements} statements each; {TENANTS} tenants x {ROWS} rows per table")
        print(f"{'table':<16} {'by id p50/p95 (µs)':>22} {'by tenant p50/p95 (µs)':>26}")
        for table in TABLES:
            point, listing = results[table]
            q = lambda xs: (statistics.median(xs) * 1e6, statistics.quantiles(xs, n=20)[18] * 1e6)  # noqa: E731
            (p50, p95), (l50, l95) = q(point), q(listing)
            print(f"{table:<16} {p50:>10.1f} / {p95:>7.1f}   {l50:>12.1f} / {l95:>8.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
