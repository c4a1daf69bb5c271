"""The checks a proposal passes before a person reviews it. They flag; they never drop.

- exact duplicate: the same text (hash) already proposed or approved in the same scope;
- near duplicate: an approved memory of the same scope whose embedding is very close (a merge);
- conflict: an approved memory with the same subject key and a different text (a supersede);
- screening: instructions aimed at agents ("ignore previous instructions" and the like) and
  secrets (keys, tokens, passwords);
- source changed: the document it quotes has a newer version without the quoted passage, so the
  proposal may describe what no longer holds.

From the findings follows one recommended decision (`findings.recommend`). The checks run when a
version is proposed, and again whenever something they read changes (memory/rechecks.py).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from quire.core.search.corpus import Corpus
from quire.core.search.dense import nearest, vector_literal
from quire.memory.findings import Findings, Reference, Screening, StaleSource, recommend
from quire.memory.models import MemoryItem, MemoryVersion
from quire.memory.quotes import find_quote

NEAR_DUPLICATE_SIMILARITY = 0.92
PASSAGE_CHARS = 500  # of the passage that replaced a quoted one, kept with the finding

INJECTION_PATTERNS = [
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|your|the)\b.{0,30}"
    r"\b(instructions?|prompts?|rules|guidelines|directions)\b",
    r"\b(you are now|from now on,? you|act as|pretend to be|roleplay as)\b",
    r"\b(system prompt|developer message|jailbreak)\b",
    r"\b(approve|accept)\b.{0,20}\b(every|all|any)\b.{0,30}\b(memor(y|ies)|proposals?|requests?)\b",
    r"\b(do not|don't|never)\b.{0,20}\b(tell|inform|alert)\b.{0,20}\b(user|reviewer|human|admin)",
    r"<\s*/?\s*(system|assistant|tool)\s*>",
]

SECRET_PATTERNS = {
    "aws_access_key": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "private_key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "api_key": r"\b(sk|pk|rk)-[A-Za-z0-9_-]{16,}\b|\bsk-ant-[A-Za-z0-9_-]{16,}\b|\bAIza[0-9A-Za-z_-]{30,}\b",
    "github_token": r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
    "slack_token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
    "quire_key": r"\bqk_[A-Za-z0-9_-]{30,}\b",
    "jwt": r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",
    "password": r"\b(password|passwd|pwd|passphrase|secret)\b\s*[:=]\s*\S{4,}",
    "connection_string": r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s@/]{3,}@",
}


def screen(text_: str) -> Findings:
    """Flags for instructions aimed at agents and for secrets in a text."""
    found = Findings()
    injection = [
        m.group(0) for p in INJECTION_PATTERNS for m in [re.search(p, text_, re.IGNORECASE | re.DOTALL)] if m
    ]
    if injection:
        found.injection = Screening(matches=injection[:5], why="it reads like instructions to an agent")
    secrets = sorted(
        name for name, pattern in SECRET_PATTERNS.items() if re.search(pattern, text_, re.IGNORECASE)
    )
    if secrets:
        found.secrets = Screening(kinds=secrets, why="it looks like it contains a credential")
    return found


def _scope_clause(item: MemoryItem) -> tuple[str, dict[str, Any]]:
    if item.scope_ref is None:
        return "i.scope = :scope AND i.scope_ref IS NULL", {"scope": item.scope.value}
    return "i.scope = :scope AND i.scope_ref = :scope_ref", {
        "scope": item.scope.value,
        "scope_ref": item.scope_ref,
    }


def run_checks(session: Session, *, version: MemoryVersion, item: MemoryItem) -> dict[str, Any]:
    """All findings for `version`, as the version keeps them (JSON; see memory/findings.py)."""
    findings = screen(version.text)
    scope_sql, scope_params = _scope_clause(item)
    params = {**scope_params, "version_id": version.id, "item_id": item.id, "hash": version.content_hash}

    duplicates = session.execute(
        text(
            "SELECT v.id, v.item_id, v.state FROM memory_version v JOIN memory_item i ON i.id = v.item_id "
            f"WHERE {scope_sql} AND v.content_hash = :hash AND v.id <> :version_id "
            "AND v.state IN ('proposed','checked','in_review','approved','needs_recertification') "
            "ORDER BY v.created_at LIMIT 5"
        ),
        params,
    ).all()
    if duplicates:
        findings.duplicate_of = [Reference(version_id=r[0], item_id=r[1], state=r[2]) for r in duplicates]

    if version.embedding is not None:
        approved_elsewhere = Corpus(
            table="memory_version v",
            id="v.id",
            embedding="v.embedding",
            joins="JOIN memory_item i ON i.id = v.item_id",
            where=f"{scope_sql} AND v.state = 'approved' "
            "AND v.item_id <> :item_id AND v.content_hash <> :hash",
        )
        near = session.execute(
            text(
                "SELECT v.id, v.item_id, v.text, n.similarity "
                f"FROM ({nearest(approved_elsewhere, limit='3')}) AS n "
                "JOIN memory_version v ON v.id = n.item_id ORDER BY n.similarity DESC"
            ),
            {**params, "vector": vector_literal(list(version.embedding))},
        ).all()
        close = [r for r in near if r[3] >= NEAR_DUPLICATE_SIMILARITY]
        if close:
            findings.near_duplicate_of = [
                Reference(version_id=r[0], item_id=r[1], text=r[2], similarity=round(float(r[3]), 3))
                for r in close
            ]

    if item.subject_key:
        conflicts = session.execute(
            text(
                "SELECT v.id, v.item_id, v.text FROM memory_version v JOIN memory_item i ON i.id = v.item_id "
                f"WHERE {scope_sql} AND i.subject_key = :subject AND v.state = 'approved' "
                "AND v.content_hash <> :hash AND v.id <> :version_id LIMIT 5"
            ),
            {**params, "subject": item.subject_key},
        ).all()
        if conflicts:
            findings.conflicts_with = [Reference(version_id=r[0], item_id=r[1], text=r[2]) for r in conflicts]
    findings.source_changed = stale_sources(session, version_id=version.id) or None
    suggestion = recommend(findings).decision
    findings.suggestion = suggestion if suggestion != "approve" else None
    return findings.stored()


def stale_sources(session: Session, *, version_id: object) -> list[StaleSource]:
    """The evidence of a memory version whose document moved on to a version without the quote."""
    rows = session.execute(
        text(
            "SELECT e.document_id, e.quote, lv.number, lv.id, e.element_id FROM memory_evidence e "
            "JOIN content_document d ON d.id = e.document_id "
            "JOIN content_version lv ON lv.id = d.latest_version_id "
            "WHERE e.version_id = :version_id AND e.quote IS NOT NULL "
            "AND e.document_version_id IS DISTINCT FROM d.latest_version_id"
        ),
        {"version_id": version_id},
    ).all()
    stale = []
    for document_id, quote, number, latest_id, element_id in rows:
        elements = session.execute(
            text("SELECT element_id, text FROM content_element WHERE version_id = :id"), {"id": latest_id}
        ).all()
        if any(find_quote(element_text, quote) for _, element_text in elements):
            continue
        # Element ids carry over from version to version, changed or not: the same id in the
        # latest version is the passage that took the quoted one's place.
        now = next(((e_id, e_text) for e_id, e_text in elements if element_id and e_id == element_id), None)
        stale.append(
            StaleSource(
                document_id=document_id,
                latest_version=number,
                why=f"version {number} of its document no longer says this",
                element_id=now[0] if now else None,
                passage=now[1][:PASSAGE_CHARS] if now else None,
            )
        )
    return stale
