"""The run inspector's waits in words, and the runs list without Quire's own background and review
runs unless asked (issue 20)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from quire.app.console.waits import describe_wait
from quire.content.environment import ContentEnvironment
from quire.core.models import Role
from quire.core.settings import Settings
from quire.memory.lifecycle import MEMORY_REVIEW
from quire.runtime.models import RunStatus
from tests.app.test_console import POLICY, console_app, ingest, keys_for, log_in
from tests.conftest import MAX_UPLOAD
from tests.factories import auth
from tests.harness import Harness

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@dataclass
class Parked:
    status: RunStatus
    waiting_for: dict[str, Any] | None
    updated_at: datetime = T0
    state: dict[str, Any] | None = field(default=None)


@dataclass
class Task:
    role: str
    title: str
    created_at: datetime = T0
    due_at: datetime | None = None


def test_a_wait_for_a_reviewer_is_told_as_one() -> None:
    run = Parked(RunStatus.waiting, {"kind": "signal", "name": "event", "seq": 3})
    task = Task("reviewer", "Review memory: Laptops are replaced every three years.")
    words = describe_wait(run, [task], now=T0 + timedelta(minutes=5))
    assert words == (
        "waiting for a reviewer's decision since 2026-12-04 09:00:00 UTC (5 min): "
        "“Review memory: Laptops are replaced every three years.”"
    )
    assert describe_wait(run, [Task("admin", "Approve", due_at=T0 + timedelta(days=1))]) == (
        "waiting for an admin's decision since 2026-12-04 09:00:00 UTC: “Approve”; "
        "due 2026-12-05 09:00:00 UTC"
    )
    assert describe_wait(run, [Task("reader", "Which office?")]).startswith("waiting for a person's decision")


def test_timers_throttles_and_other_waits_are_told_in_words() -> None:
    until = (T0 + timedelta(hours=2)).isoformat()
    said = {
        "sleep": describe_wait(Parked(RunStatus.sleeping, {"kind": "sleep", "seq": 1, "until": until})),
        "throttled": describe_wait(
            Parked(
                RunStatus.throttled, {"kind": "throttled", "step": "model:1", "until": until, "attempts": {}}
            )
        ),
        "retry": describe_wait(Parked(RunStatus.sleeping, {"kind": "retry", "step": "post", "until": until})),
        "signal": describe_wait(Parked(RunStatus.waiting, {"kind": "signal", "name": "go", "until": until})),
        "event": describe_wait(
            Parked(RunStatus.waiting, {"kind": "signal", "name": "event"}, state={"current": "approved"})
        ),
        "blocked": describe_wait(Parked(RunStatus.blocked, {"kind": "blocked", "reason": "step 3 moved"})),
        "queued": describe_wait(Parked(RunStatus.queued, {"kind": "yield", "seq": 4})),
    }
    assert said == {
        "sleep": "waiting for a timer until 2026-12-04 11:00:00 UTC",
        "throttled": "waiting for a throttled provider until 2026-12-04 11:00:00 UTC (step “model:1”)",
        "retry": "waiting to try step “post” again until 2026-12-04 11:00:00 UTC, after it failed",
        "signal": (
            "waiting for the signal “go” since 2026-12-04 09:00:00 UTC, or until 2026-12-04 11:00:00 UTC"
        ),
        "event": "in state “approved”, waiting for its next event since 2026-12-04 09:00:00 UTC",
        "blocked": (
            "blocked since 2026-12-04 09:00:00 UTC: step 3 moved; deploy a fix and retry it, or cancel it"
        ),
        "queued": "waiting for a worker since 2026-12-04 09:00:00 UTC",
    }
    for status in (RunStatus.running, RunStatus.completed, RunStatus.failed):
        assert describe_wait(Parked(status, None)) is None


@pytest.fixture
def reviewing(content: Harness, settings: Settings, environment: ContentEnvironment) -> Iterator[TestClient]:
    app = console_app(
        settings.model_copy(update={"max_upload_mb": MAX_UPLOAD / 2**20}), content.database, content.services
    )
    app.state.kicker = content.kicker
    with TestClient(app) as client:
        yield client


def listed_programs(html: str) -> set[str]:
    return set(re.findall(r'class="open"><code>[0-9a-f]{8}</code></a></td>\s*<td>([^<]+)</td>', html))


def test_a_review_runs_page_says_it_waits_for_a_reviewer_not_raw_json(
    reviewing: TestClient, content: Harness
) -> None:
    key = keys_for(content)
    ingest(reviewing, content, key[Role.contributor], POLICY, "policy.md", "text/markdown")
    runs = reviewing.get(
        "/v1/runs", params={"program": MEMORY_REVIEW.program_name}, headers=auth(key[Role.reviewer])
    ).json()["data"]
    assert runs and all(run["status"] == "waiting" for run in runs)
    assert log_in(reviewing, key[Role.reviewer], next="/console/runs").status_code == 303

    page = reviewing.get(f"/console/runs/{runs[0]['id']}").text

    notice = re.search(r'<p class="notice pending" id="waiting">(.*?)</p>', page, re.S)
    assert notice, page
    assert notice.group(1).startswith("Waiting for a reviewer&#39;s decision since ")
    assert "{" not in notice.group(1) and "kind" not in notice.group(1)
    assert "Waiting for a reviewer&#39;s decision" in page.split('id="timeline"')[1]  # the timeline too
    assert "Waiting for signal event" not in page

    # The list tells the wait in the same words, when asked to show review runs.
    listed = reviewing.get("/console/runs", params={"all": "1"}).text
    assert "waiting for a reviewer&#39;s decision since" in listed and "waiting: signal event" not in listed


def test_the_runs_list_hides_background_and_review_runs_unless_asked(
    reviewing: TestClient, content: Harness
) -> None:
    key = keys_for(content)
    ingest(reviewing, content, key[Role.contributor], POLICY, "policy.md", "text/markdown")
    assert log_in(reviewing, key[Role.admin], next="/console/runs").status_code == 303

    default = reviewing.get("/console/runs").text
    everything = reviewing.get("/console/runs", params={"all": "1"}).text
    reviews = reviewing.get("/console/runs", params={"program": MEMORY_REVIEW.program_name}).text

    assert listed_programs(default) == {"content.ingest"}
    assert 'id="hidden-note"' in default and 'id="show-hidden"' in default
    assert {"content.ingest", "memory.on-version", MEMORY_REVIEW.program_name} <= listed_programs(everything)
    assert 'name="all" value="1" id="show-all" checked' in everything
    assert listed_programs(reviews) == {MEMORY_REVIEW.program_name}  # a program asked for by name shows
    count = re.search(r'<h1>Runs <span class="count">(\d+)</span>', default)
    assert count and int(count.group(1)) == 1
