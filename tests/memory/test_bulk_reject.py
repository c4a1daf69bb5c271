"""Rejecting several memories with one reason (`memory.reviews.reject_many`, POST
/v1/memories/reject): each exactly as one rejection, the role checked where the state changes,
and nothing decided when one memory named is out of sight."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from quire.core.errors import Forbidden
from quire.memory.errors import ReasonRequired
from quire.memory.reviews import reject_many
from tests.harness import Harness
from tests.memory.test_lifecycle import POLICY, by_text, ingest, memories
from tests.memory.test_review_authorization import audit_types, item, people


def test_a_reviewer_rejects_several_with_one_reason(api: TestClient, content: Harness) -> None:
    who = people(content)
    ingest(api, content, who["ann"].headers, POLICY)
    waiting = memories(api, who["rita"].headers, state="in_review")
    portal, laptops = by_text(waiting, "travel portal"), by_text(waiting, "Laptops")
    economy = by_text(waiting, "Economy class")

    done = api.post(
        "/v1/memories/reject",
        json={"items": [portal["id"], laptops["id"]], "reason": "out of scope for the agents"},
        headers=who["rita"].headers,
    )
    assert done.status_code == 200, done.text
    assert set(done.json()["rejected"]) == {portal["id"], laptops["id"]} and done.json()["refused"] == []
    content.drive()
    for rejected in (portal, laptops):
        latest = item(api, who["rita"], rejected["id"])["latest"]
        assert (latest["state"], latest["state_reason"]) == ("rejected", "out of scope for the agents")
    assert item(api, who["rita"], economy["id"])["latest"]["state"] == "in_review"
    assert audit_types(api, who["rita"]).count("memory.rejected") == 2

    # One that no longer fits is refused with its reason; the others are still recorded.
    again = api.post(
        "/v1/memories/reject",
        json={"items": [portal["id"], economy["id"]], "reason": "duplicates"},
        headers=who["rolf"].headers,
    )
    assert again.status_code == 200, again.text
    assert again.json()["rejected"] == [economy["id"]]
    [refused] = again.json()["refused"]
    assert refused["item_id"] == portal["id"] and "is rejected" in refused["reason"]


def test_nothing_is_rejected_below_the_reviewer_role_or_without_a_reason_or_out_of_sight(
    api: TestClient, content: Harness
) -> None:
    who = people(content)
    ingest(api, content, who["ann"].headers, POLICY)
    portal = by_text(memories(api, who["rita"].headers, state="in_review"), "travel portal")
    body = {"items": [portal["id"]], "reason": "no"}
    for name in ("reader", "ann"):
        assert api.post("/v1/memories/reject", json=body, headers=who[name].headers).status_code == 403
    no_reason = api.post("/v1/memories/reject", json={**body, "reason": ""}, headers=who["rita"].headers)
    assert no_reason.status_code == 422
    blank = api.post("/v1/memories/reject", json={**body, "reason": " "}, headers=who["rita"].headers)
    assert blank.status_code == 422 and blank.json()["error"]["code"] == "reason_required"
    unknown = api.post(
        "/v1/memories/reject",
        json={**body, "items": [portal["id"], str(uuid.uuid4())]},
        headers=who["rita"].headers,
    )
    assert unknown.status_code == 404, unknown.text
    content.drive()
    assert item(api, who["rita"], portal["id"])["latest"]["state"] == "in_review"  # all or nothing
    assert "memory.rejected" not in audit_types(api, who["rita"])

    # The guard is the service's, whatever route calls it.
    with content.database.tenant_session(content.tenant_id) as session:
        with pytest.raises(Forbidden, match="reviewer role"):
            reject_many(
                session,
                item_ids=[uuid.UUID(portal["id"])],
                reason="no",
                caller=who["ann"].caller,
                kicker=None,
            )
        with pytest.raises(ReasonRequired, match="needs a reason"):
            reject_many(
                session,
                item_ids=[uuid.UUID(portal["id"])],
                reason=" ",
                caller=who["rita"].caller,
                kicker=None,
            )
