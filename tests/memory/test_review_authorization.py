"""Only a reviewer approves, through the memory routes, as themselves, and not their own proposal
(issue 16, findings 1, 5 and 6)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from quire.core.models import Role
from tests.factories import Person, TenantFixture, make_person
from tests.harness import Harness
from tests.memory.test_lifecycle import POLICY, by_text, ingest, memories

NOT_ACCEPTED = {403, 404, 409}


def people(harness: Harness) -> dict[str, Person]:
    tenant = TenantFixture(id=harness.tenant_id, name="memory")
    return {
        name: make_person(harness.database, tenant, role, name=name)
        for name, role in [
            ("reader", Role.reader),
            ("ann", Role.contributor),
            ("bob", Role.contributor),
            ("rita", Role.reviewer),
            ("rolf", Role.reviewer),
            ("adm", Role.admin),
        ]
    }


def item(api: TestClient, who: Person, item_id: str) -> dict[str, Any]:
    return api.get(f"/v1/memories/{item_id}", headers=who.headers).json()


def review(api: TestClient, who: Person, item_id: str, **decision: Any) -> Any:
    return api.post(f"/v1/memories/{item_id}/review", json=decision, headers=who.headers)


def audit_types(api: TestClient, who: Person) -> list[str]:
    return [
        e["type"]
        for e in api.get("/v1/memories/audit", params={"limit": 500}, headers=who.headers).json()["data"]
    ]


def test_a_contributor_never_decides_through_the_runtimes_routes(api: TestClient, content: Harness) -> None:
    who = people(content)
    ingest(api, content, who["ann"].headers, POLICY)
    portal = by_text(memories(api, who["rita"].headers, state="in_review"), "travel portal")
    run_id = portal["latest"]["run_id"]
    task = next(
        t for t in api.get("/v1/tasks", headers=who["rita"].headers).json()["data"] if t["run_id"] == run_id
    )
    forged_edit = {"name": "edit", "actor": str(who["rita"].id), "data": {"text": "Fly business class."}}
    attempts = [
        ("POST", f"/v1/runs/{run_id}/events", {"name": "approve"}),
        ("POST", f"/v1/runs/{run_id}/events", forged_edit),
        ("POST", f"/v1/runs/{run_id}/signals/event", {"payload": forged_edit}),
        ("POST", f"/v1/runs/{run_id}/signals/task:{task['id']}", {"payload": {"decision": "approve"}}),
        ("POST", f"/v1/tasks/{task['id']}/decision", {"decision": "approve"}),
        ("POST", f"/v1/tasks/{task['id']}/decision", {"decision": "edit", "data": {"text": "Fly first."}}),
    ]
    for person in ("ann", "rita", "adm"):  # a reviewer too: the memory route is the only way in
        for method, path, body in attempts:
            response = api.request(method, path, json=body, headers=who[person].headers)
            assert response.status_code in NOT_ACCEPTED, (person, path, response.text)
    content.drive()
    still = item(api, who["rita"], portal["id"])
    assert [v["state"] for v in still["versions"]] == ["in_review"]
    assert {"memory.approved", "memory.edited"}.isdisjoint(audit_types(api, who["rita"]))


def test_an_approved_memory_is_withdrawn_by_a_reviewer_only(api: TestClient, content: Harness) -> None:
    who = people(content)
    ingest(api, content, who["ann"].headers, POLICY)
    portal = by_text(memories(api, who["rita"].headers, state="in_review"), "travel portal")
    assert review(api, who["rita"], portal["id"], decision="approve").status_code == 202
    content.drive()
    run_id = portal["latest"]["run_id"]
    for body in ({"name": "withdraw", "data": {"comment": "x"}}, {"name": "superseded"}):
        response = api.post(f"/v1/runs/{run_id}/events", json=body, headers=who["ann"].headers)
        assert response.status_code in NOT_ACCEPTED
    refused = api.delete(f"/v1/memories/{portal['id']}", params={"reason": "x"}, headers=who["ann"].headers)
    assert refused.status_code == 403
    content.drive()
    assert item(api, who["rita"], portal["id"])["latest"]["state"] == "approved"
    approved = [
        e
        for e in api.get("/v1/memories/audit", params={"limit": 500}, headers=who["rita"].headers).json()[
            "data"
        ]
        if e["type"] == "memory.approved"
    ]
    assert [e["actor"] for e in approved] == [str(who["rita"].id)]


def proposal(document_id: str, quote: str, text: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"text": text or quote, "evidence": [{"document_id": document_id, "quote": quote}], **extra}


def test_nobody_approves_what_they_proposed(api: TestClient, content: Harness) -> None:
    who = people(content)
    document = ingest(api, content, who["ann"].headers, POLICY)
    quote = "Laptops are replaced every three years."
    made = api.post(
        "/v1/memories",
        json=proposal(document["document_id"], quote, subject_key="laptops"),
        headers=who["rita"].headers,
    )
    assert made.status_code == 202, made.text
    content.drive()
    own = review(api, who["rita"], made.json()["id"], decision="approve")
    assert own.status_code == 409 and "separation of duties" in own.json()["error"]["message"]
    assert review(api, who["rolf"], made.json()["id"], decision="approve").status_code == 202
    content.drive()
    approved = item(api, who["rolf"], made.json()["id"])["latest"]
    assert approved["state"] == "approved" and approved["approved_by"] == str(who["rolf"].id)

    # An administrator may turn it off for the tenant; then a reviewer approves their own.
    settings = api.put(
        "/v1/tenant/settings", json={"separation_of_duties": False}, headers=who["adm"].headers
    )
    assert settings.status_code == 200 and settings.json() == {"separation_of_duties": False}
    other = api.post(
        "/v1/memories",
        json=proposal(document["document_id"], "Economy class is the default for flights under six hours."),
        headers=who["rita"].headers,
    )
    content.drive()
    assert review(api, who["rita"], other.json()["id"], decision="approve").status_code == 202
    content.drive()
    assert item(api, who["rita"], other.json()["id"])["latest"]["state"] == "approved"


def test_an_edit_is_reviewed_again_and_needs_its_evidence_or_an_override(
    api: TestClient, content: Harness
) -> None:
    who = people(content)
    ingest(api, content, who["ann"].headers, POLICY)
    portal = by_text(memories(api, who["rita"].headers, state="in_review"), "travel portal")

    unsupported = review(
        api, who["rita"], portal["id"], decision="edit", text="The CEO's password is hunter2."
    )
    assert unsupported.status_code == 409
    assert "does not support" in unsupported.json()["error"]["message"]
    changed_number = review(
        api,
        who["rita"],
        portal["id"],
        decision="edit",
        text="Employees must book eight flights through the travel portal.",
    )
    assert changed_number.status_code == 409 and "eight" in changed_number.json()["error"]["message"]

    reworded = "Employees must book all their flights through the travel portal."
    assert review(api, who["rita"], portal["id"], decision="edit", text=reworded).status_code == 202
    content.drive()
    edited = item(api, who["rita"], portal["id"])
    assert [(v["state"], v["proposed_by"]) for v in edited["versions"]] == [
        ("edited", portal["latest"]["proposed_by"]),
        ("in_review", str(who["rita"].id)),
    ]
    assert edited["latest"]["findings"] is not None  # the checks ran again on the new text
    own = review(api, who["rita"], portal["id"], decision="approve")
    assert own.status_code == 409 and "separation of duties" in own.json()["error"]["message"]
    assert review(api, who["rolf"], portal["id"], decision="approve").status_code == 202
    content.drive()
    assert item(api, who["rolf"], portal["id"])["latest"]["state"] == "approved"

    laptops = by_text(memories(api, who["rita"].headers, state="in_review"), "Laptops")
    overridden = review(
        api,
        who["rolf"],
        laptops["id"],
        decision="edit",
        text="Laptops are replaced every two years.",
        override="the hardware policy changed in May; the document is being updated",
    )
    assert overridden.status_code == 202, overridden.text
    content.drive()
    events = api.get(f"/v1/memories/{laptops['id']}", headers=who["rolf"].headers).json()["events"]
    edited_event = next(e for e in events if e["type"] == "memory.edited")
    assert edited_event["actor"] == str(who["rolf"].id)
    assert edited_event["data"]["override"]["reason"].startswith("the hardware policy changed")
    assert "two" in edited_event["data"]["override"]["unsupported"]


def test_nobody_writes_into_another_persons_private_memory(api: TestClient, content: Harness) -> None:
    who = people(content)
    document = ingest(api, content, who["ann"].headers, POLICY)
    quote = "Laptops are replaced every three years."
    mine = api.post(
        "/v1/memories",
        json=proposal(document["document_id"], quote, scope="user", scope_ref=str(who["ann"].id)),
        headers=who["ann"].headers,
    )
    assert mine.status_code == 202, mine.text
    content.drive()
    versions_before = len(item(api, who["rita"], mine.json()["id"])["versions"])

    planted = api.post(
        "/v1/memories",
        json=proposal(
            document["document_id"], quote, text="Laptops are never replaced.", item_id=mine.json()["id"]
        ),
        headers=who["bob"].headers,
    )
    assert planted.status_code == 404
    content.drive()
    assert len(item(api, who["rita"], mine.json()["id"])["versions"]) == versions_before

    theirs = api.post(
        "/v1/memories",
        json=proposal(document["document_id"], quote, scope="user", scope_ref=str(who["ann"].id)),
        headers=who["bob"].headers,
    )
    assert theirs.status_code == 403
