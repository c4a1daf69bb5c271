"""Retrieval benchmark on SciFact: the lexical leg, the dense leg and the hybrid, inside PostgreSQL.

    .venv/bin/python -m bench.retrieval                       # train queries (../shared/data)
    .venv/bin/python -m bench.retrieval --qrels path/to/test.tsv     # tuned on the train queries

Every abstract becomes a Quire document (title + text -> elements -> chunks -> embeddings ->
postings, through the content layer's own functions, without the file parser). Queries go
through content.search's legs (`hybrid_legs`: each leg's candidates, scored by both legs); each
leg alone and reciprocal rank fusion rank their own candidates; the min-max blend of the two
legs' own candidates is what Quire shipped before `blend_scaled`. A document's score is its best
chunk's. Blend weights are tuned on the tuning qrels only, then applied to the scored qrels.
Also printed: search latency through the service function, and HNSW recall@10 against an exact
scan at several ef_search values.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlmodel import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quire.app.bootstrap import migrate  # noqa: E402
from quire.content.chunking import search_text  # noqa: E402
from quire.content.indexing import embed_chunks, publish_version  # noqa: E402
from quire.content.ingestion import write_chunks, write_elements  # noqa: E402
from quire.content.models import Chunk, Document, Version  # noqa: E402
from quire.content.search import CANDIDATES, Scope, dense_leg, hybrid_legs, search  # noqa: E402
from quire.core.db import Database  # noqa: E402
from quire.core.embedded import EmbeddedPostgres  # noqa: E402
from quire.core.embeddings import Embedder, get_embedder  # noqa: E402
from quire.core.models import Tenant  # noqa: E402
from quire.core.search.fusion import blend, blend_scaled, reciprocal_rank_fusion  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "scifact"


@dataclass(frozen=True)
class Paragraph:
    type: str
    text: str
    html: str | None = None
    page: int | None = None
    section_path: tuple[str, ...] = ()
    metadata: dict[str, object] = field(default_factory=dict)


def read_qrels(path: Path) -> dict[str, set[str]]:
    qrels: dict[str, set[str]] = defaultdict(set)
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[-1].lstrip("-").isdigit() or parts[0] == "query-id":
            continue
        if int(parts[-1]) > 0:
            qrels[parts[0]].add(parts[-2])
    return dict(qrels)


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, doc in enumerate(ranked[:10]) if doc in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def recall_at_100(ranked: list[str], relevant: set[str]) -> float:
    return len(set(ranked[:100]) & relevant) / len(relevant)


def load_corpus(database: Database, tenant_id: uuid.UUID, batch: int = 200) -> None:
    """Index every abstract."""
    embedder = get_embedder("all-MiniLM-L6-v2")
    lines = (DATA / "corpus.jsonl").read_text().splitlines()
    started = time.perf_counter()
    for offset in range(0, len(lines), batch):
        with database.tenant_session(tenant_id) as session:
            version_ids = []
            for line in lines[offset : offset + batch]:
                record = json.loads(line)
                title = record["title"].strip() or record["_id"]
                document = Document(
                    tenant_id=tenant_id, collection="scifact", source_key=record["_id"], title=title[:1000]
                )
                session.add(document)
                session.flush()
                version = Version(
                    tenant_id=tenant_id,
                    document_id=document.id,
                    number=1,
                    sha256="0" * 64,
                    size_bytes=len(record["text"]),
                    filename=f"{record['_id']}.txt",
                    content_type="text/plain",
                    blob_key="0" * 64,
                )
                session.add(version)
                session.flush()
                body = [Paragraph("title", title)]
                body += (
                    [Paragraph("narrative_text", record["text"], section_path=(title,))]
                    if record["text"]
                    else []
                )
                write_elements(session, version, body)
                session.flush()
                write_chunks(session, version.id)
                version_ids.append((version.id, title))
            session.flush()
            chunks = []
            for version_id, title in version_ids:
                for chunk in session.exec(select(Chunk).where(Chunk.version_id == version_id)):
                    chunks.append(
                        (chunk.id, chunk.text_hash, search_text(title, chunk.section_path, chunk.text))
                    )
            embed_chunks(session, tenant_id=tenant_id, chunks=chunks, embedder=embedder)
            for version_id, _ in version_ids:
                publish_version(session, version_id=version_id, model=embedder.name)
            session.commit()
        done = min(offset + batch, len(lines))
        rate = done / (time.perf_counter() - started)
        print(
            f"\r  indexed {done}/{len(lines)} abstracts ({rate:.0f}/s)", end="", file=sys.stderr, flush=True
        )
    print(file=sys.stderr)


def to_docs(scores: dict[uuid.UUID, float], chunk_doc: dict[uuid.UUID, str]) -> list[str]:
    best: dict[str, float] = {}
    for chunk_id, score in scores.items():
        doc = chunk_doc[chunk_id]
        best[doc] = max(best.get(doc, -1e9), score)
    return sorted(best, key=lambda d: -best[d])


def legs(
    database: Database, tenant_id: uuid.UUID, queries: dict[str, str], ids: list[str], ef: int
) -> dict[str, tuple[dict[uuid.UUID, float], dict[uuid.UUID, float]]]:
    """Each query's two legs as content.search computes them: each scoring both legs' candidates."""
    embedder = get_embedder("all-MiniLM-L6-v2")
    out = {}
    with database.tenant_session(tenant_id) as session:
        for qid in ids:
            vector = embedder.embed_one(queries[qid])
            out[qid] = hybrid_legs(session, queries[qid], vector, Scope(), CANDIDATES, ef)
    return out


def top(scores: dict[uuid.UUID, float]) -> dict[uuid.UUID, float]:
    """A leg alone: its own best candidates (without the other leg's, which it scored too)."""
    return dict(sorted(scores.items(), key=lambda item: -item[1])[:CANDIDATES])


def evaluate(
    runs: dict[str, tuple[dict[uuid.UUID, float], dict[uuid.UUID, float]]],
    qrels: dict[str, set[str]],
    chunk_doc: dict[uuid.UUID, str],
    method: str,
    weight: float = 0.5,
) -> tuple[float, float]:
    ndcgs, recalls = [], []
    for qid, relevant in qrels.items():
        lexical, dense = runs[qid]
        if method == "lexical":
            scores = top(lexical)
        elif method == "dense":
            scores = top(dense)
        elif method == "rrf":
            scores = {f.id: f.score for f in reciprocal_rank_fusion(top(lexical), top(dense))}
        elif method == "min-max":  # each leg's own candidates, min-max blended (Quire before)
            scores = {f.id: f.score for f in blend(top(lexical), top(dense), dense_weight=weight)}
        else:  # what content.search does
            scores = {f.id: f.score for f in blend_scaled(lexical, dense, dense_weight=weight)}
        ranked = to_docs(scores, chunk_doc)
        ndcgs.append(ndcg_at_10(ranked, relevant))
        recalls.append(recall_at_100(ranked, relevant))
    return statistics.mean(ndcgs), statistics.mean(recalls)


def hnsw_recall(database: Database, tenant_id: uuid.UUID, queries: list[str], ef: int) -> float:
    embedder = get_embedder("all-MiniLM-L6-v2")
    found = []
    with database.tenant_session(tenant_id) as session:
        for query in queries:
            vector = embedder.embed_one(query)
            approximate = set(dense_leg(session, vector, Scope(), 10, ef))
            session.execute(text("SET LOCAL enable_indexscan = off"))
            exact = set(dense_leg(session, vector, Scope(version_id=None), 10, ef))
            session.execute(text("SET LOCAL enable_indexscan = on"))
            found.append(len(approximate & exact) / 10)
    return statistics.mean(found)


class Precomputed(Embedder):
    """The queries' vectors computed beforehand, so that a timing measures the search alone."""

    def __init__(self, model: Embedder, texts: list[str]) -> None:
        self.name, self.dim = model.name, model.dim
        self.vectors = dict(zip(texts, model.embed(texts), strict=True))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vectors[text_] for text_ in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qrels", type=Path, default=DATA / "qrels" / "train.tsv", help="qrels to score")
    parser.add_argument(
        "--tune-qrels", type=Path, default=DATA / "qrels" / "train.tsv", help="qrels to tune on"
    )
    parser.add_argument("--ef", type=int, default=100, help="hnsw.ef_search for the dense leg")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the indexed corpus here and reuse it on the next run (default: a temporary folder)",
    )
    args = parser.parse_args()

    queries = {
        json.loads(line)["_id"]: json.loads(line)["text"]
        for line in (DATA / "queries.jsonl").read_text().splitlines()
    }
    scored, tuning = read_qrels(args.qrels), read_qrels(args.tune_qrels)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="quire-bench-retrieval-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(data_dir)
    url, _ = server.start()
    try:
        migrate(url)
        database = Database(url, pool_size=2)
        with database.system_session() as session:
            tenant = session.exec(select(Tenant).where(Tenant.name == "scifact")).first()
            if tenant is None:
                tenant = Tenant(name="scifact")
                session.add(tenant)
                session.commit()
        with database.tenant_session(tenant.id) as session:
            loaded = session.execute(text("SELECT count(*) FROM content_document")).scalar_one()
        if not loaded:
            print(f"SciFact: indexing {DATA / 'corpus.jsonl'}", file=sys.stderr)
            started = time.perf_counter()
            load_corpus(database, tenant.id)
            print(f"  indexed in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        with database.engine.connect() as conn:  # what autovacuum would do after a bulk load
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        with database.tenant_session(tenant.id) as session:
            rows = session.execute(
                text(
                    "SELECT c.id, d.source_key FROM content_chunk c "
                    "JOIN content_document d ON d.id = c.document_id"
                )
            ).all()
        chunk_doc = {row[0]: row[1] for row in rows}
        print(f"  {len(chunk_doc)} chunks", file=sys.stderr)

        tune_runs = legs(database, tenant.id, queries, sorted(tuning), args.ef)
        grid = [round(0.05 * i, 2) for i in range(21)]
        weights = {  # each fusion's dense weight, tuned on the tuning qrels only
            method: max(grid, key=lambda w: evaluate(tune_runs, tuning, chunk_doc, method, w)[0])
            for method in ("min-max", "hybrid")
        }
        methods = (
            ("lexical (BM25 in SQL)", "lexical"),
            (f"dense (HNSW, ef_search {args.ef})", "dense"),
            ("reciprocal rank fusion", "rrf"),
            (f"min-max blend (dense weight {weights['min-max']})", "min-max"),
            (f"hybrid, content.search (weight {weights['hybrid']})", "hybrid"),
        )
        print(f"\ntuning on {len(tuning)} queries of {args.tune_qrels.name}:")
        for label, method in methods:
            ndcg, recall = evaluate(tune_runs, tuning, chunk_doc, method, weights.get(method, 0.0))
            print(f"  {label:40} nDCG@10 {ndcg:.3f}  recall@100 {recall:.3f}")
        runs = (
            tune_runs
            if args.qrels == args.tune_qrels
            else legs(database, tenant.id, queries, sorted(scored), args.ef)
        )

        print(
            f"\nSciFact, {len(scored)} queries of {args.qrels.name}; "
            f"weights tuned on {args.tune_qrels.name}; {CANDIDATES} candidates per leg"
        )
        print(f"{'':42} {'nDCG@10':>8} {'recall@100':>11}")
        for label, method in methods:
            ndcg, recall = evaluate(runs, scored, chunk_doc, method, weights.get(method, 0.0))
            print(f"{label:42} {ndcg:8.3f} {recall:11.3f}")
        tuned = weights["hybrid"]

        model = get_embedder("all-MiniLM-L6-v2")
        embedded = Precomputed(model, [queries[qid] for qid in sorted(scored)])
        for label, embedder in (
            ("query embedded by ONNX Runtime", model),
            ("query embedded by sentence-transformers", get_embedder("all-MiniLM-L6-v2", runtime="torch")),
            ("search alone", embedded),
        ):
            latencies = []
            with database.tenant_session(tenant.id) as session:
                for qid in sorted(scored):
                    t0 = time.perf_counter()
                    results = search(
                        session,
                        query=queries[qid],
                        embedder=embedder,
                        k=10,
                        dense_weight=tuned,
                        ef_search=args.ef,
                    )
                    latencies.append((time.perf_counter() - t0) * 1000)
                    assert results.hits, f"no hits for query {qid}"
            latencies.sort()
            p95 = latencies[int(0.95 * (len(latencies) - 1))]
            print(
                f"search through content.search (k=10, hybrid, {label}): "
                f"p50 {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms; every query had hits"
            )
        sample = [queries[q] for q in sorted(scored)[:100]]
        print(
            "HNSW recall@10 against an exact scan: "
            + ", ".join(
                f"ef_search {ef}: {hnsw_recall(database, tenant.id, sample, ef):.3f}" for ef in (40, 100, 200)
            )
        )
        print(
            "reference, outside any database (../shared/data/SOURCES.md, train queries): BM25 0.695, "
            "dense 0.660, RRF 0.717, blend 0.738; "
            "test split: bm25s 0.676, dense 0.645, RRF 0.714, blend 0.734"
        )
        database.dispose()
    finally:
        server.stop()
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
