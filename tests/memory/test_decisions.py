"""Review decisions that cannot strand a memory (issue 20): refused when made if they cannot
succeed; a failure in the review run sends the memory back to the queue; a plain approve retires
nothing (supersede and keep both are the reviewer's choice); a merge keeps the text the reviewer
chose and moves evidence only where it supports it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.harness import Harness
from tests.memory.test_lifecycle import POLICY, by_text, ingest, keys, memories

RETENTION = """# Retention policy

## Sensors

Sensor readings are kept for 4 years, then deleted.

## Amendment

From March, sensor readings are kept for 5 years, then deleted.
"""

SLOT = "retention: sensor readings"


def propose(
    api: TestClient,
    key: dict[str, str],
    document_id: str,
    text: str,
    quote: str,
    *,
    subject_key: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    response = api.post(
        "/v1/memories",
        json={
            "text": text,
            "subject_key": subject_key,
            "evidence": [{"document_id": document_id, "quote": quote}],
            **extra,
        },
        headers=key,
    )
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


def decide(api: TestClient, key: dict[str, str], item_id: str, **decision: Any) -> Any:
    return api.post(f"/v1/memories/{item_id}/review", json=decision, headers=key)


def memory(api: TestClient, key: dict[str, str], item_id: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/v1/memories/{item_id}", headers=key).json()
    return found


def retention(years: int) -> tuple[str, str]:
    """A retention rule of the slot, and the passage of RETENTION that supports it."""
    text = f"Sensor readings are kept for {years} years, then deleted."
    return text, text if years == 4 else text[0].lower() + text[1:]


def propose_retention(api: TestClient, key: dict[str, dict[str, str]], document_id: str, years: int) -> str:
    text, quote = retention(years)
    item_id: str = propose(api, key["contributor"], document_id, text, quote, subject_key=SLOT)["id"]
    return item_id


def retention_slot(api: TestClient, content: Harness) -> tuple[dict[str, dict[str, str]], str, str, str]:
    """An approved "4 years" memory and a "5 years" proposal in the same slot."""
    key = {role.value: headers for role, headers in keys(content).items()}
    document = ingest(api, content, key["contributor"], RETENTION, name="retention.md")
    four = propose_retention(api, key, document["document_id"], 4)
    content.drive()
    assert decide(api, key["reviewer"], four, decision="approve").status_code == 202
    content.drive()
    five = propose_retention(api, key, document["document_id"], 5)
    content.drive()
    return key, document["document_id"], four, five


def without_separation_of_duties(api: TestClient, key: dict[str, dict[str, str]]) -> None:
    """The tenant lets whoever edits approve: an edit approves its copy at once."""
    off = api.put("/v1/tenant/settings", json={"separation_of_duties": False}, headers=key["admin"])
    assert off.status_code == 200, off.text


def test_a_plain_approve_never_retires_another_memory(api: TestClient, content: Harness) -> None:
    key, _, four, five = retention_slot(api, content)

    refused = decide(api, key["reviewer"], five, decision="approve")

    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "slot_has_approved_memory"
    assert four in error["message"] and "supersede" in error["message"] and "keep_both" in error["message"]
    assert [e["item_id"] for e in error["existing"]] == [four]
    content.drive()
    assert memory(api, key["reviewer"], four)["latest"]["state"] == "approved"
    assert memory(api, key["reviewer"], five)["latest"]["state"] == "in_review"


def test_keep_both_approves_beside_the_slots_approved_memory(api: TestClient, content: Harness) -> None:
    key, _, four, five = retention_slot(api, content)

    assert decide(api, key["reviewer"], five, decision="keep_both").status_code == 202
    content.drive()

    assert memory(api, key["reviewer"], four)["latest"]["state"] == "approved"
    assert memory(api, key["reviewer"], five)["latest"]["state"] == "approved"


def test_supersede_names_the_memory_it_retires(api: TestClient, content: Harness) -> None:
    key, _, four, five = retention_slot(api, content)

    unnamed = decide(api, key["reviewer"], five, decision="supersede")
    assert unnamed.status_code == 409 and unnamed.json()["error"]["code"] == "supersede_target_invalid"
    assert four in unnamed.json()["error"]["message"]
    wrong = decide(api, key["reviewer"], five, decision="supersede", supersedes=five)
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "supersede_target_invalid"

    assert decide(api, key["reviewer"], five, decision="supersede", supersedes=four).status_code == 202
    content.drive()

    old = memory(api, key["reviewer"], four)
    assert old["latest"]["state"] == "superseded"
    assert old["latest"]["state_reason"] == "a reviewer approved another memory of its slot to supersede it"
    ended = next(e for e in old["events"] if e["type"] == "memory.superseded")
    assert ended["data"]["by_item"] == five
    assert memory(api, key["reviewer"], five)["latest"]["state"] == "approved"


def test_an_approve_overtaken_in_its_slot_goes_back_to_the_queue(api: TestClient, content: Harness) -> None:
    key = {role.value: headers for role, headers in keys(content).items()}
    document = ingest(api, content, key["contributor"], RETENTION, name="retention.md")
    four = propose_retention(api, key, document["document_id"], 4)
    five = propose_retention(api, key, document["document_id"], 5)
    content.drive()
    # Both are accepted: neither slot has an approved memory yet when they are decided.
    assert decide(api, key["reviewer"], four, decision="approve").status_code == 202
    assert decide(api, key["reviewer"], five, decision="approve").status_code == 202
    content.drive(until=3)

    assert memory(api, key["reviewer"], four)["latest"]["state"] == "approved"
    back = memory(api, key["reviewer"], five)["latest"]
    assert back["state"] == "in_review"
    assert "slot" in back["review_error"] and four in back["review_error"]
    assert five in [m["id"] for m in memories(api, key["reviewer"], state="in_review")]

    assert decide(api, key["reviewer"], five, decision="keep_both").status_code == 202
    content.drive()
    assert memory(api, key["reviewer"], five)["latest"]["state"] == "approved"
    assert memory(api, key["reviewer"], four)["latest"]["state"] == "approved"


def duplicate_of_portal(
    api: TestClient, content: Harness, *, approve: bool
) -> tuple[dict[str, Any], str, str]:
    """The extractor's "travel portal" proposal (approved or not) and a person's duplicate of it."""
    key = {role.value: headers for role, headers in keys(content).items()}
    document = ingest(api, content, key["contributor"], POLICY)
    portal = by_text(memories(api, key["reviewer"], state="in_review"), "travel portal")["id"]
    if approve:
        assert decide(api, key["reviewer"], portal, decision="approve").status_code == 202
        content.drive()
    duplicate = propose(
        api,
        key["contributor"],
        document["document_id"],
        "Employees must book flights through the travel portal.",
        "book flights through the travel portal",
    )["id"]
    content.drive()
    found = memory(api, key["reviewer"], duplicate)["latest"]["findings"]
    assert found["duplicate_of"][0]["item_id"] == portal
    return key, portal, duplicate


def propose_beside(
    api: TestClient, content: Harness, key: dict[str, Any], portal: str, text: str, quote: str, **extra: Any
) -> str:
    """A person's proposal quoting the document of the "travel portal" memory, checked and in review."""
    document_id = memory(api, key["reviewer"], portal)["latest"]["evidence"][0]["document_id"]
    item_id: str = propose(api, key["contributor"], document_id, text, quote, **extra)["id"]
    content.drive()
    return item_id


def test_a_merge_into_a_memory_still_in_review_is_refused_when_decided(
    api: TestClient, content: Harness
) -> None:
    key, portal, duplicate = duplicate_of_portal(api, content, approve=False)

    refused = decide(api, key["reviewer"], duplicate, decision="merge", into=portal)

    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "merge_target_invalid"
    assert "in review, not approved" in refused.json()["error"]["message"]
    itself = decide(api, key["reviewer"], duplicate, decision="merge", into=duplicate)
    assert itself.status_code == 409 and "itself" in itself.json()["error"]["message"]
    content.drive()
    # Nothing was recorded: the proposal is as decidable as before.
    assert decide(api, key["reviewer"], duplicate, decision="reject", reason="a duplicate").status_code == 202
    content.drive()
    assert memory(api, key["reviewer"], duplicate)["latest"]["state"] == "rejected"


def test_a_merge_target_of_another_scope_is_refused(api: TestClient, content: Harness) -> None:
    key, portal, _ = duplicate_of_portal(api, content, approve=True)
    elsewhere = propose_beside(
        api,
        content,
        key,
        portal,
        "Employees must book flights through the travel portal.",
        "book flights through the travel portal",
        scope="collection",
        scope_ref="finance",
    )

    refused = decide(api, key["reviewer"], elsewhere, decision="merge", into=portal)

    assert refused.status_code == 409 and refused.json()["error"]["code"] == "merge_target_invalid"
    assert "scope" in refused.json()["error"]["message"]


def test_a_failed_review_run_returns_the_memory_to_the_queue(api: TestClient, content: Harness) -> None:
    key, portal, duplicate = duplicate_of_portal(api, content, approve=True)
    # The target is withdrawn between the merge decision and the merge's step: the withdrawal
    # is decided first, so the worker applies it first.
    withdrawn = api.delete(
        f"/v1/memories/{portal}", params={"reason": "out of date"}, headers=key["reviewer"]
    )
    assert withdrawn.status_code == 202
    assert decide(api, key["reviewer"], duplicate, decision="merge", into=portal).status_code == 202
    content.drive(until=3)  # time for retries, where a step retries

    back = memory(api, key["reviewer"], duplicate)["latest"]
    assert back["state"] == "in_review"
    assert "not approved" in back["review_error"] and portal in back["review_error"]
    assert duplicate in [m["id"] for m in memories(api, key["reviewer"], state="in_review")]
    run = api.get(f"/v1/runs/{back['run_id']}", headers=key["reviewer"]).json()
    assert run["status"] == "failed"

    again = decide(api, key["reviewer"], duplicate, decision="reject", reason="the rule was withdrawn")
    assert again.status_code == 202, again.text
    content.drive()
    decided = memory(api, key["reviewer"], duplicate)
    assert decided["latest"]["state"] == "rejected" and decided["latest"]["review_error"] is None
    restarted = next(e for e in decided["events"] if e["type"] == "memory.review_restarted")
    assert "could not be applied" in restarted["reason"]


def test_a_merge_keeping_the_targets_text_leaves_unsupporting_evidence_behind(
    api: TestClient, content: Harness
) -> None:
    key, portal, _ = duplicate_of_portal(api, content, approve=True)
    before = memory(api, key["reviewer"], portal)["latest"]
    other = propose_beside(
        api,
        content,
        key,
        portal,
        "Economy class is the default for flights under six hours.",
        "Economy class is the default for flights under six hours.",
    )

    assert (
        decide(api, key["reviewer"], other, decision="merge", into=portal, keep="target").status_code == 202
    )
    content.drive()

    after = memory(api, key["reviewer"], portal)["latest"]
    assert after["id"] == before["id"] and after["text"] == before["text"]
    assert [e["quote"] for e in after["evidence"]] == [e["quote"] for e in before["evidence"]]
    merged = memory(api, key["reviewer"], other)
    assert merged["latest"]["state"] == "merged"
    event = next(e for e in merged["events"] if e["type"] == "memory.merged")
    assert event["data"]["into"] == portal and event["data"]["keep"] == "target"


def test_a_merge_keeping_the_proposals_text_makes_it_the_targets_new_version(
    api: TestClient, content: Harness
) -> None:
    key, portal, _ = duplicate_of_portal(api, content, approve=True)
    longer = propose_beside(
        api,
        content,
        key,
        portal,
        "Employees must book all flights through the travel portal.",
        "Employees must book flights through the travel portal.",
    )

    merged = decide(api, key["reviewer"], longer, decision="merge", into=portal, keep="proposal")
    assert merged.status_code == 202, merged.text
    content.drive()

    target = memory(api, key["reviewer"], portal)
    assert [(v["number"], v["state"]) for v in target["versions"]] == [(1, "superseded"), (2, "approved")]
    assert target["latest"]["text"] == "Employees must book all flights through the travel portal."
    assert target["approved_version_id"] == target["latest"]["id"]
    proposed = next(e for e in target["events"] if e["type"] == "memory.proposed" and e["data"].get("keep"))
    assert proposed["data"]["merged_from_item"] == longer


def test_a_merge_keeping_an_edit_carries_both_memories_evidence(api: TestClient, content: Harness) -> None:
    key, portal, _ = duplicate_of_portal(api, content, approve=True)
    without_separation_of_duties(api, key)
    economy = propose_beside(
        api,
        content,
        key,
        portal,
        "Economy class is the default for flights under six hours.",
        "Economy class is the default for flights under six hours.",
    )
    unsupported = decide(
        api, key["reviewer"], economy, decision="merge", into=portal, keep="edit", text="Fly business class."
    )
    assert unsupported.status_code == 409 and "does not support" in unsupported.json()["error"]["message"]
    no_text = decide(api, key["reviewer"], economy, decision="merge", into=portal, keep="edit")
    assert no_text.status_code == 409

    text = "Employees must book flights through the travel portal, in economy class under six hours."
    merged = decide(api, key["reviewer"], economy, decision="merge", into=portal, keep="edit", text=text)
    assert merged.status_code == 202, merged.text
    content.drive()

    target = memory(api, key["reviewer"], portal)["latest"]
    assert (target["text"], target["state"]) == (text, "approved")
    assert sorted(e["quote"] for e in target["evidence"]) == [
        "Economy class is the default for flights under six hours.",
        "Employees must book flights through the travel portal.",
    ]


def test_an_edit_in_a_slot_with_an_approved_memory_waits_for_the_choice(
    api: TestClient, content: Harness
) -> None:
    key, _, four, five = retention_slot(api, content)
    # Without separation of duties an edit approves its copy at once, unless the slot is taken.
    without_separation_of_duties(api, key)

    edited = decide(api, key["reviewer"], five, decision="edit", text="Sensor readings are kept for 5 years.")
    assert edited.status_code == 202, edited.text
    content.drive()

    copy = memory(api, key["reviewer"], five)
    assert [v["state"] for v in copy["versions"]] == ["edited", "in_review"]
    assert memory(api, key["reviewer"], four)["latest"]["state"] == "approved"
    assert decide(api, key["reviewer"], five, decision="approve").status_code == 409
    assert decide(api, key["reviewer"], five, decision="supersede", supersedes=four).status_code == 202
    content.drive()
    assert memory(api, key["reviewer"], four)["latest"]["state"] == "superseded"
    assert memory(api, key["reviewer"], five)["latest"]["state"] == "approved"
