"""Mixed sizes: small files uploaded while a 600-page PDF and an 800-page Word file ingest.

    .venv/bin/python -m bench.ingest --mixed [--files 60]

One worker process, as on a small deployment. The large documents are uploaded first and the
small files a few seconds later, as a user dropping a manual and then a handful of memos would.
Prints, for Quire as configured by default and for the earlier design measured in the same run
(one parsing child per worker, every document parsed whole: `QUIRE_PARSE_CHILDREN=1
QUIRE_PARSE_RANGE_PAGES=0`), files/s, upload-to-searchable p50/p90 of the small and of the large
files, the runs recovered and the "lost the lease" warnings (both must be 0 with one healthy
worker), and the worker's resident memory (with its parsing children) before and after.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.ingest import (
    ROOT,
    WORDS,
    make_folder,
    paragraph,
    quire,
    recoveries,
    superuser_engine,
    wait_for_idle_worker,
)
from quire.core.settings import Settings
from tests.content.fixtures import pdf

PDF_PAGES = 600
DOCX_PAGES = 800
PARAGRAPHS_PER_DOCX_PAGE = 4

# The earlier design, for the baseline column: one child parsing one file at a time, whole.
EARLIER = {"QUIRE_PARSE_CHILDREN": "1", "QUIRE_PARSE_RANGE_PAGES": "0"}


def make_large(folder: Path, seed: int = 31) -> int:
    """A dense 600-page PDF (twenty lines of text a page) and an 800-page Word file (headings,
    paragraphs, a page break every four paragraphs). Returns their pages."""
    import docx

    rng = random.Random(seed)
    page_lines = []
    for page in range(PDF_PAGES):
        text = " ".join(paragraph(rng) for _ in range(4))
        lines = [f"Operations manual, chapter {page // 20 + 1}, page {page + 1}"]
        lines += [text[i : i + 95] for i in range(0, min(len(text), 95 * 20), 95)]
        page_lines.append(lines)
    (folder / "manual.pdf").write_bytes(pdf(page_lines))

    document = docx.Document()
    document.add_heading(f"Handbook of {rng.choice(WORDS)} and {rng.choice(WORDS)}", 1)
    for page in range(DOCX_PAGES):
        if page % 10 == 0:
            document.add_heading(f"Part {page // 10 + 1}: {rng.choice(WORDS)}", 2)
        for _ in range(PARAGRAPHS_PER_DOCX_PAGE):
            document.add_paragraph(paragraph(rng))
        document.add_page_break()
    buffer = io.BytesIO()
    document.save(buffer)
    (folder / "handbook.docx").write_bytes(buffer.getvalue())
    return PDF_PAGES + DOCX_PAGES


def worker_tree_rss(root: int) -> int:
    """Resident bytes of the worker processes below `root` and of their parsing children, each
    shared page counted once (PSS): forked children share most of the parser with their server,
    and summing their RSS would count it once per child."""
    total = 0
    try:
        for worker in psutil.Process(root).children(recursive=True):
            if "quire.app.worker" not in " ".join(worker.cmdline()):
                continue
            for process in [worker, *worker.children(recursive=True)]:
                try:
                    total += process.memory_full_info().pss
                except psutil.Error:
                    continue
    except psutil.Error:
        pass
    return total


def settled_rss(root: int, seconds: float = 10.0) -> int:
    """The worker tree's memory once it has been idle a while (its lowest reading over `seconds`):
    retired parsing children exit and the allocator gives pages back a moment after the work."""
    readings = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readings.append(worker_tree_rss(root))
        time.sleep(0.5)
    return min(readings)


@dataclass
class Outcome:
    label: str
    seconds: float
    files: int
    small: list[float]  # upload to searchable, seconds, one per small file indexed
    large: dict[str, float | None]  # file name -> upload to searchable (None: not indexed)
    large_status: dict[str, str]
    small_not_indexed: int
    recovered: int
    lost_leases: int
    rss_before: int
    rss_after: int


def upload_to_searchable(env: dict[str, str]) -> list[tuple[str, str, float | None]]:
    """Each version's file name, status and seconds from upload to indexed."""
    from sqlalchemy import text

    engine = superuser_engine(env)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT filename, status, extract(epoch FROM indexed_at - created_at) "
                "FROM content_version ORDER BY created_at"
            )
        ).all()
    engine.dispose()
    return [(row[0], str(row[1]), None if row[2] is None else float(row[2])) for row in rows]


def run(label: str, work: Path, small: Path, large: Path, threads: int, extra: dict[str, str]) -> Outcome:
    data = work / f"data-{label}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    env.update(
        QUIRE_DATA_DIR=str(data),
        QUIRE_LOG_LEVEL="WARNING",
        QUIRE_WORKER_THREADS=str(threads),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    worker_log = work / f"worker-{label}.log"
    workers = None
    try:
        started = quire(env, "db", "start")
        assert started.returncode == 0, started.stderr
        assert quire(env, "migrate").returncode == 0
        from quire.app.bootstrap import first_admin_key

        first_admin_key(Settings(data_dir=data, secret_key=""))
        workers = subprocess.Popen(
            [sys.executable, "-m", "quire.app.cli", "worker", "--processes", "1"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=worker_log.open("w"),
        )
        time.sleep(15)  # the worker imports the parser and loads the model before the clock starts
        rss_before = settled_rss(workers.pid, 5)
        t0 = time.perf_counter()
        command = [sys.executable, "-m", "quire.app.cli", "ingest"]
        big = subprocess.Popen([*command, str(large)], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        time.sleep(5)  # the large files are uploaded and their runs started
        little = quire(env, "ingest", str(small))
        big_out, _ = big.communicate()
        seconds = time.perf_counter() - t0
        # A failed file makes `quire ingest` exit non-zero; the figures below say which one.
        if little.returncode != 0 or big.returncode != 0:
            print(f"[{label}] quire ingest exited {little.returncode}/{big.returncode}")
            print((little.stdout + big_out)[-1500:])
        wait_for_idle_worker(env)
        rss_after = settled_rss(workers.pid)
        versions = upload_to_searchable(env)
        recovered = recoveries(env)["recovered"]
    finally:
        if workers is not None:
            workers.terminate()
            workers.wait(60)
        quire(env, "db", "stop")
    large_names = {p.name for p in large.iterdir()}
    small_rows = [row for row in versions if row[0] not in large_names]
    return Outcome(
        label=label,
        seconds=seconds,
        files=len(versions),
        small=[s for _, status, s in small_rows if s is not None and status == "indexed"],
        large={
            name: s if status == "indexed" else None for name, status, s in versions if name in large_names
        },
        large_status={name: status for name, status, _ in versions if name in large_names},
        small_not_indexed=sum(1 for _, status, _ in small_rows if status != "indexed"),
        recovered=recovered,
        lost_leases=worker_log.read_text(errors="replace").count("lost the lease"),
        rss_before=rss_before,
        rss_after=rss_after,
    )


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(files: int, threads: int, only: str | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="quire-bench-mixed-"))
    small, large = work / "small", work / "large"
    small.mkdir()
    large.mkdir()
    small_pages = make_folder(small, files)
    large_pages = make_large(large)
    size = sum(p.stat().st_size for p in large.iterdir()) / 2**20
    print(
        f"Mixed-size ingestion: {files} small files ({small_pages} pages) uploaded 5 s after a "
        f"{PDF_PAGES}-page PDF and a {DOCX_PAGES}-page Word file ({large_pages} pages, {size:.1f} MiB); "
        f"{os.cpu_count()} cores, one worker process with {threads} threads"
    )
    configurations = [("default", {}), ("earlier", EARLIER)]
    outcomes = []
    for label, extra in configurations:
        if only and label != only:
            continue
        print(
            f"running {label} ({' '.join(f'{k}={v}' for k, v in extra.items()) or 'settings as shipped'})..."
        )
        outcomes.append(run(label, work, small, large, threads, extra))
    shutil.rmtree(work, ignore_errors=True)

    def cell(value: float | None, unit: str = "s") -> str:
        return "not indexed" if value is None else f"{value:.1f} {unit}"

    rows: list[tuple[str, list[str]]] = [
        (
            "files/s (upload of the first to the last searchable)",
            [f"{o.files / o.seconds:.2f}" for o in outcomes],
        ),
        ("small files: upload to searchable, p50", [cell(statistics.median(o.small)) for o in outcomes]),
        (
            "small files: upload to searchable, p90 (goal < 15 s)",
            [cell(percentile(o.small, 0.9)) for o in outcomes],
        ),
        ("small files not indexed", [str(o.small_not_indexed) for o in outcomes]),
    ]
    for name in ("manual.pdf", "handbook.docx"):
        rows.append(
            (
                f"{name}: upload to searchable",
                [
                    cell(o.large.get(name)) if o.large.get(name) else o.large_status.get(name, "?")
                    for o in outcomes
                ],
            )
        )
    rows += [
        ("runs recovered (goal 0)", [str(o.recovered) for o in outcomes]),
        ('"lost the lease" warnings (goal 0)', [str(o.lost_leases) for o in outcomes]),
        (
            "worker memory before (worker + parsing children)",
            [f"{o.rss_before / 2**20:.0f} MiB" for o in outcomes],
        ),
        ("worker memory after the run", [f"{o.rss_after / 2**20:.0f} MiB" for o in outcomes]),
        (
            "  growth (goal < 300 MiB)",
            [f"{(o.rss_after - o.rss_before) / 2**20:+.0f} MiB" for o in outcomes],
        ),
    ]
    print()
    print(f"{'':56}" + "".join(f"{o.label:>18}" for o in outcomes))
    for title, cells in rows:
        print(f"{title:56}" + "".join(f"{c:>18}" for c in cells))
