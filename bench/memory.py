"""Memory benchmark on LoCoMo: recall of each question's evidence turns, through governed memory.

    .venv/bin/python -m bench.memory                        # ../shared/data/locomo/locomo_dev5.json
    .venv/bin/python -m bench.memory --data-dir /tmp/quire-bench-memory   # keep and reuse the database

Each conversation becomes a document of its own collection: written as the transcript JSON a user
would upload, read by the content layer's transcript reader into one `turn` element per turn
(speaker, turn id, session and session date in the element's metadata), and stored through the
content layer's functions (without the parsing worker or the blob store). The memory layer
proposes an episode for each turn (`quire.memory.conversations`); each proposal goes through the
review process (checked, then in review), and the bench, as the reviewer, approves every one. Each
question is recalled with `quire.memory.recall.recall` by a reader of its conversation's
collection, and the hits are mapped back to turns through their evidence. recall@10 "any": at
least one evidence turn in the top 10; "all": every evidence turn in the top 10. Categories 1-4 (5
is LoCoMo's unanswerable questions). Beside it, in the same run: BM25 over the raw turns
(`quire.core.search`, one index per conversation). The file's observations and summaries are never
read.

Tuning and reporting are split by conversation: recall's settings (dense weight, neighbour
weight, speaker boost) are chosen on the tuning conversations (default conv-26 and conv-30) and
reported on the others, then on all five with the same settings.

Then a latency run at --scale approved memories (default 100,000) in a tenant of its own: the real
episodes plus copies of them in other collections, with the speakers renamed and the embeddings
perturbed, inserted as approved versions directly (a bench-only shortcut: no review process, no
audit events), and indexed like approved memories are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quire.agent.config import offline_config  # noqa: E402
from quire.agent.environment import build_agent  # noqa: E402
from quire.app.bootstrap import migrate  # noqa: E402
from quire.app.services import Services, load_programs  # noqa: E402
from quire.content.environment import ContentEnvironment  # noqa: E402
from quire.content.indexing import publish_version  # noqa: E402
from quire.content.ingestion import write_elements  # noqa: E402
from quire.content.models import Document, Version  # noqa: E402
from quire.content.parsing import ParsedElement  # noqa: E402
from quire.content.transcripts import TURN, read_transcript  # noqa: E402
from quire.core.blobs import FileBlobStore  # noqa: E402
from quire.core.db import Database  # noqa: E402
from quire.core.embedded import EmbeddedPostgres  # noqa: E402
from quire.core.embeddings import Embedder, get_embedder  # noqa: E402
from quire.core.models import Role, Tenant  # noqa: E402
from quire.core.search.dense import vector_literal  # noqa: E402
from quire.core.search.lexical import lexical_scores  # noqa: E402
from quire.core.search.postings import index_items  # noqa: E402
from quire.core.settings import RECALL_DENSE_WEIGHT  # noqa: E402
from quire.core.settings import Settings as QuireSettings  # noqa: E402
from quire.core.tenancy import Caller  # noqa: E402
from quire.memory.conversations import propose_episodes  # noqa: E402
from quire.memory.models import ReviewDecision  # noqa: E402
from quire.memory.recall import (  # noqa: E402
    NEIGHBOUR_WEIGHT,
    SPEAKER_BOOST,
    Candidates,
    Reader,
    find_candidates,
    rank,
    recall,
)
from quire.memory.review_actions import INDEX_NAME  # noqa: E402
from quire.memory.reviews import review  # noqa: E402
from quire.runtime.executor import Executor  # noqa: E402
from quire.runtime.local import LocalKicker, drive  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev5.json"
MODEL = "all-MiniLM-L6-v2"
K = 10
CATEGORIES = (1, 2, 3, 4)
DENSE_WEIGHTS = (0.3, 0.4, 0.5, 0.6)
NEIGHBOUR_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)
SPEAKER_BOOSTS = (0.0, 0.1, 0.2, 0.4, 0.7)
NAMES = ["Ava", "Ben", "Cleo", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "Jada", "Kai", "Lena"]


@dataclass(frozen=True)
class Settings:
    """Recall's ranking settings, as the bench tunes them."""

    dense_weight: float
    neighbour_weight: float
    speaker_boost: float

    def __str__(self) -> str:
        return (
            f"dense weight {self.dense_weight}, neighbour weight {self.neighbour_weight}, "
            f"speaker boost {self.speaker_boost}"
        )


@dataclass(frozen=True)
class Question:
    conversation: str
    text: str
    category: int
    evidence: frozenset[str]


# The data: turns and questions, nothing else of the file.


def session_date(value: str) -> datetime:
    return datetime.strptime(value.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def transcript_of(sample: dict[str, Any]) -> bytes:
    """A LoCoMo conversation as the transcript JSON a user uploads (quire.content.transcripts)."""
    conversation = sample["conversation"]
    sessions = []
    number = 1
    while f"session_{number}" in conversation:
        sessions.append(
            {
                "date": session_date(conversation[f"session_{number}_date_time"]).isoformat(),
                "turns": [
                    {"speaker": turn["speaker"], "text": turn["text"], "id": turn["dia_id"]}
                    for turn in conversation[f"session_{number}"]
                ],
            }
        )
        number += 1
    return json.dumps({"transcript": {"sessions": sessions}}).encode()


def turns_of(sample: dict[str, Any]) -> list[ParsedElement]:
    """The conversation's turns, read as an uploaded transcript is."""
    turns = read_transcript(transcript_of(sample))
    assert turns is not None
    return turns


def questions_of(sample: dict[str, Any], turn_ids: set[str]) -> tuple[list[Question], int]:
    """Questions of categories 1-4 with their evidence turns; a few evidence ids in the file are
    malformed ("D8:6; D9:17", "D:11:26") or name no turn of the conversation: mended or dropped."""
    kept, dropped = [], 0
    for qa in sample["qa"]:
        if qa["category"] not in CATEGORIES:
            continue
        evidence = set()
        for raw in qa.get("evidence", []):
            for part in re.split(r"[;,]\s*", raw):
                turn_id = part.strip().replace("D:", "D")
                if turn_id in turn_ids:
                    evidence.add(turn_id)
        if evidence:
            kept.append(Question(sample["sample_id"], qa["question"], qa["category"], frozenset(evidence)))
        else:
            dropped += 1
    return kept, dropped


class CachedEmbedder(Embedder):
    """The model's embeddings, kept on disk between runs (keyed by the text's hash)."""

    def __init__(self, path: Path) -> None:
        self.inner = get_embedder(MODEL)
        self.name, self.dim, self.path = self.inner.name, self.inner.dim, path
        self.known: dict[str, list[float]] = pickle.loads(path.read_bytes()) if path.exists() else {}
        self.added = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = sorted({(key, t) for key, t in zip(keys, texts, strict=True) if key not in self.known})
        if missing:
            for (key, _), vector in zip(missing, self.inner.embed([t for _, t in missing]), strict=True):
                self.known[key] = vector
            self.added += len(missing)
        return [self.known[key] for key in keys]

    def save(self) -> None:
        if self.added:
            self.path.write_bytes(pickle.dumps(self.known))
            self.added = 0


# Loading: documents, episodes through review, the baseline's index.


def collection_of(sample_id: str) -> str:
    return f"locomo-{sample_id}"


def load_conversations(
    session: Session, tenant_id: uuid.UUID, samples: list[dict[str, Any]]
) -> list[uuid.UUID]:
    """One document per conversation; returns the ids of their versions."""
    version_ids = []
    for sample in samples:
        turns = turns_of(sample)
        document = Document(
            tenant_id=tenant_id,
            collection=collection_of(sample["sample_id"]),
            source_key=sample["sample_id"],
            title=f"LoCoMo {sample['sample_id']}",
        )
        session.add(document)
        session.flush()
        version = Version(
            tenant_id=tenant_id,
            document_id=document.id,
            number=1,
            sha256="0" * 64,
            size_bytes=sum(len(t.text) for t in turns),
            filename=f"{sample['sample_id']}.json",
            content_type="application/json",
            blob_key="0" * 64,
        )
        session.add(version)
        session.flush()
        write_elements(session, version, turns)
        session.flush()
        publish_version(session, version_id=version.id, model=MODEL)
        version_ids.append(version.id)
    return version_ids


def approve_all(database: Database, tenant_id: uuid.UUID, executor: Executor, kicker: LocalKicker) -> int:
    """The bench as the reviewer: approve every memory waiting for review."""
    reviewer = Caller(
        principal_id=uuid.uuid4(), tenant_id=tenant_id, name="bench reviewer", role=Role.reviewer
    )
    with database.tenant_session(tenant_id) as session:
        waiting = [
            row[0]
            for row in session.execute(
                text("SELECT item_id FROM memory_version WHERE state = 'in_review' ORDER BY created_at")
            )
        ]
    for offset in range(0, len(waiting), 200):
        with database.tenant_session(tenant_id) as session:
            for item_id in waiting[offset : offset + 200]:
                decision = ReviewDecision(decision="approve", reason="LoCoMo turn")
                review(session, item_id=item_id, decision=decision, caller=reviewer, kicker=kicker)
            session.commit()
        drive(executor, kicker)
        print(f"\r  approved {min(offset + 200, len(waiting))}/{len(waiting)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return len(waiting)


def load(
    database: Database,
    tenant_id: uuid.UUID,
    samples: list[dict[str, Any]],
    embedder: Embedder,
    services: Services,
) -> None:
    kicker = LocalKicker()
    executor = Executor(
        database, kicker, slice_steps=1000, slice_seconds=3600, programs=services.programs, services=services
    )
    started = time.perf_counter()
    with database.tenant_session(tenant_id) as session:
        version_ids = load_conversations(session, tenant_id, samples)
        session.commit()
    proposed = 0
    for version_id in version_ids:
        with database.tenant_session(tenant_id) as session:
            proposed += len(
                propose_episodes(session, version_id=version_id, kicker=kicker, embedder=embedder)
            )
            session.commit()
    print(f"  proposed {proposed} episodes in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    started = time.perf_counter()
    drive(executor, kicker)  # each review process: checks, then waits in review
    print(f"  checked, in review after {time.perf_counter() - started:.0f} s", file=sys.stderr)
    started = time.perf_counter()
    approved = approve_all(database, tenant_id, executor, kicker)
    print(f"  {approved} approved and indexed in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    executor.stop()
    with database.tenant_session(tenant_id) as session:  # the baseline's index: the raw turns
        turns: dict[str, list[tuple[uuid.UUID, str]]] = defaultdict(list)
        for sample_id, element_id, body in session.execute(
            text(
                "SELECT d.source_key, e.element_id, e.text FROM content_element e "
                "JOIN content_document d ON d.id = e.document_id WHERE e.type = :turn"
            ),
            {"turn": TURN},
        ).all():
            turns[sample_id].append((element_id, body))
        for sample_id, items in turns.items():
            index_items(session, tenant_id=tenant_id, index_name=baseline_index(sample_id), items=items)
        session.commit()


def baseline_index(sample_id: str) -> str:
    return f"bench-locomo-turns:{sample_id}"


# Scoring.


Ranked = dict[Question, list[str]]  # the turn ids of the top K, per question


def score(ranked: Ranked, questions: Sequence[Question]) -> dict[object, tuple[float, float, int]]:
    found: dict[object, list[tuple[float, float]]] = defaultdict(list)
    for question in questions:
        top = set(ranked[question][:K])
        pair = (float(bool(top & question.evidence)), float(question.evidence <= top))
        found[question.category].append(pair)
        found["overall"].append(pair)
    return {
        key: (statistics.mean(p[0] for p in pairs), statistics.mean(p[1] for p in pairs), len(pairs))
        for key, pairs in found.items()
    }


def table_row(label: str, figures: dict[object, tuple[float, float, int]]) -> str:
    cells = [
        f"{figures[c][0]:.3f}/{figures[c][1]:.3f}" if c in figures else "      -    " for c in CATEGORIES
    ]
    overall = figures["overall"]
    return f"{label:44} " + " ".join(f"{cell:>11}" for cell in cells) + f"  {overall[0]:.3f}/{overall[1]:.3f}"


def table_header(questions: Sequence[Question]) -> str:
    counts = {c: sum(1 for q in questions if q.category == c) for c in CATEGORIES}
    cells = [f"cat {c} ({counts[c]})" for c in CATEGORIES]
    return (
        f"{'recall@10 any/all':44} "
        + " ".join(f"{cell:>11}" for cell in cells)
        + f"  overall ({len(questions)})"
    )


def turn_ids(database: Database, tenant_id: uuid.UUID) -> tuple[dict[uuid.UUID, str], dict[uuid.UUID, str]]:
    """Memory version -> the turn its evidence quotes; element -> turn id."""
    with database.tenant_session(tenant_id) as session:
        rows = session.execute(
            text(
                "SELECT ev.version_id, el.element_id, el.metadata->>'turn_id' FROM memory_evidence ev "
                "JOIN content_element el "
                "ON el.element_id = ev.element_id AND el.version_id = ev.document_version_id"
            )
        ).all()
    return {r[0]: r[2] for r in rows}, {r[1]: r[2] for r in rows}


def reader_for(question: Question) -> Reader:
    return Reader(principal_id=None, collections=(collection_of(question.conversation),))


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[round(share * (len(ordered) - 1))]


def evaluate(
    database: Database,
    tenant_id: uuid.UUID,
    questions: list[Question],
    tune: set[str],
    embedder: CachedEmbedder,
) -> Settings:
    by_version, by_element = turn_ids(database, tenant_id)
    now = datetime.now(UTC)
    baseline: Ranked = {}
    found: dict[Question, Candidates] = {}
    with database.tenant_session(tenant_id) as session:
        for question in questions:
            hits = lexical_scores(
                session, index_name=baseline_index(question.conversation), query=question.text, limit=K
            )
            baseline[question] = [
                by_element.get(e, "?") for e in sorted(hits, key=lambda e: (-hits[e], str(e)))
            ]
            found[question] = find_candidates(
                session, query=question.text, reader=reader_for(question), embedder=embedder, as_of=now
            )

    def ranked_with(settings: Settings) -> Ranked:
        return {
            q: [
                by_version[v]
                for v, _ in rank(
                    found[q],
                    query=q.text,
                    dense_weight=settings.dense_weight,
                    neighbour_weight=settings.neighbour_weight,
                    speaker_boost=settings.speaker_boost,
                )[:K]
            ]
            for q in questions
        }

    embedder.save()
    tuning = [q for q in questions if q.conversation in tune]
    held_out = [q for q in questions if q.conversation not in tune]
    grid = [Settings(w, n, s) for w in DENSE_WEIGHTS for n in NEIGHBOUR_WEIGHTS for s in SPEAKER_BOOSTS]

    def objective(settings: Settings) -> tuple[float, float, float]:
        overall = score(ranked_with(settings), tuning)["overall"]
        # Ties go to the simpler settings.
        return overall[0] + overall[1], overall[0], -settings.neighbour_weight - settings.speaker_boost

    tuned = max(grid, key=objective)
    # What the API and the agent get: recall's own settings, with the configured dense weight.
    defaults = Settings(RECALL_DENSE_WEIGHT, NEIGHBOUR_WEIGHT, SPEAKER_BOOST)
    blend_only = max((s for s in grid if not s.neighbour_weight and not s.speaker_boost), key=objective)
    print(
        f"\ntuned on {len(tuning)} questions of {', '.join(sorted(tune))} "
        f"(grid of {len(grid)}, objective any + all): {tuned}"
    )

    # The reported figures go through recall() itself, the model embedding each query.
    recalled: Ranked = {}
    latencies = timed_recalls(
        database, tenant_id, questions, reader_for, tuned, get_embedder(MODEL), by_element, recalled
    )
    tuned_ranking = ranked_with(tuned)
    agreement = statistics.mean(float(recalled[q] == tuned_ranking[q]) for q in questions)

    rows: list[tuple[str, Callable[[Sequence[Question]], dict[object, tuple[float, float, int]]]]] = [
        ("BM25 over raw turns (baseline)", lambda qs: score(baseline, qs)),
        (
            f"memory recall, blend only (w {blend_only.dense_weight})",
            lambda qs: score(ranked_with(blend_only), qs),
        ),
        (
            f"memory recall, recall()'s defaults (w {defaults.dense_weight})",
            lambda qs: score(ranked_with(defaults), qs),
        ),
        ("memory recall, tuned (through recall())", lambda qs: score(recalled, qs)),
    ]
    for label, subset in (
        (f"held out: {', '.join(sorted({q.conversation for q in held_out}))}", held_out),
        ("all five conversations (tuned settings)", questions),
    ):
        if not subset:
            continue
        print(f"\n{label}\n{table_header(subset)}")
        for name, figures in rows:
            print(table_row(name, figures(subset)))
    print(f"\nsame top {K} through recall() as through the tuning path for {agreement:.1%} of questions")
    searched = timed_recalls(database, tenant_id, questions, reader_for, tuned, embedder)
    print(latency_line(f"recall() over {len(questions)} questions", latencies, searched))
    return tuned


def timed_recalls(
    database: Database,
    tenant_id: uuid.UUID,
    questions: Sequence[Question],
    reader_of: Callable[[Question], Reader],
    settings: Settings,
    embedder: Embedder,
    by_element: dict[uuid.UUID, str] | None = None,
    recalled: Ranked | None = None,
) -> list[float]:
    """Each question recalled once, timed (ms); the hits' turns go to `recalled` if given."""
    latencies = []
    with database.tenant_session(tenant_id) as session:
        for question in [questions[0], *questions]:  # the first one warms up
            started = time.perf_counter()
            results = recall(
                session,
                query=question.text,
                reader=reader_of(question),
                embedder=embedder,
                k=K,
                dense_weight=settings.dense_weight,
                neighbour_weight=settings.neighbour_weight,
                speaker_boost=settings.speaker_boost,
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if recalled is not None and by_element is not None:
                recalled[question] = [
                    by_element[e.element_id] for h in results.hits for e in h.evidence if e.element_id
                ]
    return latencies[1:]


def latency_line(label: str, whole: Sequence[float], searched: Sequence[float]) -> str:
    """End to end (the model embeds the query) and the search alone (the query's embedding cached)."""
    load = os.getloadavg()[0]
    return (
        f"{label} (k={K}): p50 {statistics.median(whole):.1f} ms, p95 {percentile(whole, 0.95):.1f} ms "
        f"with the query's embedding; search alone p50 {statistics.median(searched):.1f} ms, "
        f"p95 {percentile(searched, 0.95):.1f} ms (load average {load:.1f} on {os.cpu_count()} cores)"
    )


# The latency run: many approved memories.


def scale_up(
    database: Database, source: uuid.UUID, target: uuid.UUID, samples: list[dict[str, Any]], total: int
) -> None:
    """Copies of the real episodes until the target tenant holds `total` approved memories."""
    with database.tenant_session(target) as session:
        load_conversations(session, target, samples)
        session.commit()
        elements = {
            (r[0], r[1]): (r[2], r[3], r[4])
            for r in session.execute(
                text(
                    "SELECT d.source_key, e.metadata->>'turn_id', e.element_id, e.version_id, d.id "
                    "FROM content_element e JOIN content_document d ON d.id = e.document_id"
                )
            )
        }
    with database.tenant_session(source) as session:
        episodes = session.execute(
            text(
                "SELECT v.text, v.data, v.embedding::text, d.source_key, v.data->>'turn_id', ev.quote, "
                "ev.char_start, ev.char_end, v.valid_from FROM memory_version v "
                "JOIN memory_evidence ev ON ev.version_id = v.id "
                "JOIN content_document d ON d.id = ev.document_id "
                "WHERE v.state = 'approved' ORDER BY v.created_at"
            )
        ).all()
    rng = random.Random(7)
    speakers = sorted({e[1]["speaker"] for e in episodes})
    copies = -(-total // len(episodes))
    names_pattern = r"\b(" + "|".join(map(re.escape, speakers)) + r")\b"
    started = time.perf_counter()
    made = 0
    for copy in range(copies):
        renamed = dict(zip(speakers, rng.sample(NAMES * 2, len(speakers)), strict=True)) if copy else {}
        items, versions, evidence, postings = [], [], [], []
        for body, data, vector, sample_id, turn_id, quote, start, end, valid_from in episodes:
            if made >= total:
                break
            if copy:
                body = rename(body, names_pattern, renamed)
                data = {**data, "speaker": renamed.get(data["speaker"], data["speaker"])}
                values = [float(x) for x in vector.strip("[]").split(",")]
                noisy = [x + rng.gauss(0, 0.02) for x in values]
                norm = sum(x * x for x in noisy) ** 0.5
                vector = vector_literal([x / norm for x in noisy])
            item_id, version_id = uuid.uuid4(), uuid.uuid4()
            element_id, document_version_id, document_id = elements[(sample_id, turn_id)]
            collection = collection_of(sample_id) if not copy else f"filler-{copy}-{sample_id}"
            items.append({"id": item_id, "t": target, "ref": collection, "v": version_id})
            versions.append(
                {
                    "id": version_id,
                    "item": item_id,
                    "t": target,
                    "text": body,
                    "data": json.dumps(data),
                    "e": vector,
                    "from": valid_from,
                    "hash": hashlib.sha256(body.encode()).hexdigest(),
                }
            )
            evidence.append(
                {
                    "id": uuid.uuid4(),
                    "t": target,
                    "v": version_id,
                    "d": document_id,
                    "dv": document_version_id,
                    "el": element_id,
                    "s": start,
                    "e": end,
                    "q": quote,
                }
            )
            postings.append((version_id, body))
            made += 1
        insert_approved(database, target, items, versions, evidence, postings)
        print(
            f"\r  {made}/{total} approved memories ({time.perf_counter() - started:.0f} s)",
            end="",
            file=sys.stderr,
        )
    print(file=sys.stderr)


def rename(body: str, pattern: str, names: dict[str, str]) -> str:
    return re.sub(pattern, lambda match: names[match.group(0)], body)


def insert_approved(
    database: Database,
    tenant_id: uuid.UUID,
    items: list[dict[str, Any]],
    versions: list[dict[str, Any]],
    evidence: list[dict[str, Any]],
    postings: list[tuple[uuid.UUID, str]],
) -> None:
    """Bench-only shortcut: approved memories written directly, as the review process leaves them."""
    with database.tenant_session(tenant_id) as session:
        session.execute(
            text(
                "INSERT INTO memory_item (id, tenant_id, kind, scope, scope_ref, current_version_id, "
                "approved_version_id, created_at, updated_at) "
                "VALUES (:id, :t, 'episode', 'collection', :ref, :v, :v, now(), now())"
            ),
            items,
        )
        session.execute(
            text(
                "INSERT INTO memory_version (id, tenant_id, item_id, number, text, data, embedding, "
                "valid_from, confidence, extractor, extractor_version, content_hash, state, findings, "
                "proposed_by, approved_at, created_at) "
                "VALUES (:id, :t, :item, 1, :text, CAST(:data AS jsonb), CAST(:e AS vector), :from, 1.0, "
                "'conversation', '1', :hash, 'approved', '{}', 'bench:memory', now(), now())"
            ),
            versions,
        )
        session.execute(
            text(
                "INSERT INTO memory_evidence (id, tenant_id, version_id, document_id, document_version_id, "
                "element_id, char_start, char_end, quote, added_at) "
                "VALUES (:id, :t, :v, :d, :dv, :el, :s, :e, :q, now())"
            ),
            evidence,
        )
        index_items(session, tenant_id=tenant_id, index_name=INDEX_NAME, items=postings)
        session.commit()


def latency_at_scale(
    database: Database, tenant_id: uuid.UUID, questions: list[Question], tuned: Settings, embedder: Embedder
) -> None:
    with database.tenant_session(tenant_id) as session:
        count = session.execute(
            text("SELECT count(*) FROM memory_version WHERE state = 'approved'")
        ).scalar_one()
    _, by_element = turn_ids(database, tenant_id)
    readers: list[tuple[str, Callable[[Question], Reader]]] = [
        ("a reader of one conversation's collection", reader_for),
        ("a reader of every collection", lambda q: Reader(principal_id=None)),
    ]
    for label, reader_of in readers:
        recalled: Ranked = {}
        whole = timed_recalls(
            database, tenant_id, questions, reader_of, tuned, get_embedder(MODEL), by_element, recalled
        )
        searched = timed_recalls(database, tenant_id, questions, reader_of, tuned, embedder)
        print(latency_line(f"recall() at {count:,} approved memories, {label}", whole, searched))
        if reader_of is reader_for:  # the same questions, among many more memories
            overall = score(recalled, questions)["overall"]
            print(f"  recall@10 any/all there, all five conversations: {overall[0]:.3f}/{overall[1]:.3f}")


def tenant_named(database: Database, name: str) -> tuple[uuid.UUID, bool]:
    with database.system_session() as session:
        tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
        if tenant is not None:
            return tenant.id, False
        tenant = Tenant(name=name)
        session.add(tenant)
        session.commit()
        return tenant.id, True


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="LoCoMo conversations (locomo10.json form)")
    parser.add_argument(
        "--tune", default="conv-26,conv-30", help="conversations to tune on (comma-separated)"
    )
    parser.add_argument(
        "--scale", type=int, default=100_000, help="approved memories for the latency run (0: skip)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the database (and the embedding cache) here and reuse them on the next run",
    )
    args = parser.parse_args()

    samples = json.loads(args.data.read_text())
    questions, dropped = [], 0
    for sample in samples:
        kept, lost = questions_of(sample, {str(p.metadata["turn_id"]) for p in turns_of(sample)})
        questions += kept
        dropped += lost
    tune = {name.strip() for name in args.tune.split(",") if name.strip()}
    print(
        f"LoCoMo: {len(samples)} conversations, {sum(len(turns_of(s)) for s in samples)} turns, "
        f"{len(questions)} questions of categories 1-4 ({dropped} without a usable evidence turn left out)",
        file=sys.stderr,
    )
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="quire-bench-memory-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(data_dir)
    url, _ = server.start()
    try:
        migrate(url)
        database = Database(url, pool_size=4)
        content = ContentEnvironment(blobs=FileBlobStore(data_dir / "blobs"), embedding_model=MODEL)
        services = Services(
            content=content,
            agent=build_agent(offline_config(), database),
            programs=load_programs(QuireSettings()),
        )
        embedder = CachedEmbedder(data_dir / "embeddings.pickle")
        tenant_id, new = tenant_named(database, "locomo")
        if new:
            print("loading the conversations into memory (propose, check, review, approve)", file=sys.stderr)
            load(database, tenant_id, samples, embedder, services)
            embedder.save()
        with database.engine.connect() as conn:  # what autovacuum would do after a bulk load
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        tuned = evaluate(database, tenant_id, questions, tune, embedder)
        print(
            "reference (../shared/data/SOURCES.md; ten conversations, outside any database): "
            "BM25 0.631/0.520, dense 0.517/0.407, RRF 0.606/0.487, blend 0.703/0.570, "
            "blend over date-prefixed turns 0.726/0.588; goal any >= 0.80, all >= 0.65"
        )
        if args.scale:
            scale_id, new = tenant_named(database, f"locomo-scale-{args.scale}")
            if new:
                print(f"\nwriting {args.scale:,} approved memories for the latency run", file=sys.stderr)
                scale_up(database, tenant_id, scale_id, samples, args.scale)
                with database.engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
            print()
            latency_at_scale(database, scale_id, questions, tuned, embedder)
        database.dispose()
    finally:
        server.stop()
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
