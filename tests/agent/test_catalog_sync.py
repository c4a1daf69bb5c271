"""Syncing the tool catalog: two syncs of one tenant at once (two first runs starting together)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from quire.agent.tools.catalog import ToolDescription, sync_source
from tests.harness import Harness

TOOLS = [
    ToolDescription(name="weather_forecast", summary="Get the weather forecast for a city."),
    ToolDescription(name="track_parcel", summary="Track a parcel by its tracking number."),
]


def test_two_syncs_of_a_tenant_at_once_both_succeed_and_store_each_tool_once(content: Harness) -> None:
    embedder = content.services.content.embedder
    errors: list[BaseException] = []
    reports = []

    def second_sync() -> None:
        try:
            with content.database.tenant_session(content.tenant_id) as session:
                reports.append(
                    sync_source(
                        session, tenant_id=content.tenant_id, source="builtin", tools=TOOLS, embedder=embedder
                    )
                )
                session.commit()
        except BaseException as error:  # whatever the thread raised, the test reports
            errors.append(error)

    with content.database.tenant_session(content.tenant_id) as first:
        sync_source(first, tenant_id=content.tenant_id, source="builtin", tools=TOOLS, embedder=embedder)
        other = threading.Thread(target=second_sync)
        other.start()
        time.sleep(1.0)  # the second sync reads the catalog while the first has not committed
        first.commit()
    other.join(timeout=30)

    assert not other.is_alive() and errors == []
    assert reports and reports[0].added == 0 and reports[0].unchanged == len(TOOLS)
    with content.database.tenant_session(content.tenant_id) as session:
        count = session.execute(text("SELECT count(*) FROM agent_tool WHERE source = 'builtin'")).scalar_one()
        assert count == len(TOOLS)
