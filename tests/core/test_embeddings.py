"""The bundled model on ONNX Runtime: the same vectors as sentence-transformers, exported once."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from quire.core import onnx_embedder
from quire.core.embeddings import (
    BUNDLED_MODEL,
    SentenceTransformerEmbedder,
    _make_embedder,
    model_folder,
)
from quire.core.onnx_embedder import ExportFailed, OnnxEmbedder

TEXTS = [
    "",
    "hello",
    "What does the contract say about termination for convenience?",
    # Longer than the model's 256 tokens: both runtimes must cut it at the same place.
    "Mitochondrial DNA mutations accumulate with age in skeletal muscle. " * 60,
    "Ünïcödé, 数字 and emoji 🙂 in one line",
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def torch_vectors() -> list[list[float]]:
    return SentenceTransformerEmbedder(BUNDLED_MODEL).embed(TEXTS)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


def test_onnx_vectors_are_sentence_transformers_vectors(
    cache: Path, torch_vectors: list[list[float]]
) -> None:
    embedder = _make_embedder(BUNDLED_MODEL, "onnx", cache)
    assert isinstance(embedder, OnnxEmbedder)
    vectors = embedder.embed(TEXTS)
    for text, mine, theirs in zip(TEXTS, vectors, torch_vectors, strict=True):
        assert len(mine) == 384
        assert math.isclose(math.sqrt(sum(x * x for x in mine)), 1.0, rel_tol=1e-5)
        assert cosine(mine, theirs) > 0.9999, text[:40]
    # Batched or alone, a text gets the same vector (padding does not leak into the mean).
    assert cosine(embedder.embed_one(TEXTS[2]), vectors[2]) > 0.99999
    [export] = cache.glob("all-MiniLM-L6-v2-*.onnx")
    # Attention and layer norms run as ONNX Runtime's fused operators (the checks above are on
    # the fused graph).
    operators = {node.op_type for node in onnx.load(str(export)).graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= operators


def test_a_new_process_loads_the_export_without_torch(cache: Path) -> None:
    _make_embedder(BUNDLED_MODEL, "onnx", cache).warm_up()  # the export exists
    code = (
        "import sys; from pathlib import Path; from quire.core.embeddings import get_embedder;"
        f"e = get_embedder('{BUNDLED_MODEL}', cache_dir=Path({str(cache)!r}));"
        "print(len(e.embed_one('hello')), 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["384", "False"]


def test_processes_starting_together_export_once(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path; from quire.core.embeddings import get_embedder;"
        f"print(len(get_embedder('{BUNDLED_MODEL}', cache_dir=Path({str(tmp_path)!r})).embed_one('x')))"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for process in starts:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        assert out.strip() == "384"
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    assert not list(tmp_path.glob("*.part")), "a partial export was left behind"


def test_a_failed_export_falls_back_to_torch_with_the_same_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, torch_vectors: list[list[float]]
) -> None:
    def broken(folder: Path, path: Path, max_length: int) -> None:
        raise ExportFailed("the ONNX export differs from torch (cosine 0.12)")

    monkeypatch.setattr(onnx_embedder, "_export", broken)
    embedder = _make_embedder(BUNDLED_MODEL, "onnx", tmp_path)
    vectors = embedder.embed(TEXTS)
    assert all(cosine(a, b) > 0.9999 for a, b in zip(vectors, torch_vectors, strict=True))
    assert not list(tmp_path.glob("*.onnx"))


def test_models_onnx_cannot_reproduce_stay_on_sentence_transformers(tmp_path: Path) -> None:
    bundled = model_folder(BUNDLED_MODEL)
    assert bundled is not None and onnx_embedder.supports(bundled)
    folder = tmp_path / "cls-pooled"
    shutil.copytree(bundled, folder)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    assert not onnx_embedder.supports(folder)
    assert isinstance(_make_embedder(str(folder), "onnx", tmp_path), SentenceTransformerEmbedder)
    # And the torch runtime is always sentence-transformers, for a GPU.
    assert isinstance(_make_embedder(BUNDLED_MODEL, "torch", tmp_path), SentenceTransformerEmbedder)


def test_an_unknown_runtime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown embedding runtime 'tpu'"):
        _make_embedder(BUNDLED_MODEL, "tpu", tmp_path)


def test_parts_are_read_off_the_whole_text(cache: Path) -> None:
    embedder = _make_embedder(BUNDLED_MODEL, "onnx", cache)
    text = "Book a table for two in Lisbon tonight, and then convert 40 euros to dollars"
    parts = [
        "Book a table for two in Lisbon tonight",
        "convert 40 euros to dollars",
        "not in the text at all",
    ]
    whole, booking, money, elsewhere = embedder.embed_with_parts(text, parts)
    assert cosine(whole, embedder.embed_one(text)) > 0.9999
    alone = embedder.embed(parts)
    # Each part's vector is its own, informed by the rest: near its separate embedding, and
    # nearer to it than to the other part's.
    assert cosine(booking, alone[0]) > 0.8 and cosine(money, alone[1]) > 0.8
    assert cosine(booking, alone[0]) > cosine(booking, alone[1])
    assert cosine(money, alone[1]) > cosine(money, alone[0])
    assert cosine(elsewhere, alone[2]) > 0.9999  # not found in the text: embedded on its own


def test_a_single_threaded_embedder_computes_the_same_vectors(
    cache: Path, torch_vectors: list[list[float]]
) -> None:
    # Workers embed with one thread per call (their own threads run side by side).
    embedder = _make_embedder(BUNDLED_MODEL, "onnx", cache, threads=1)
    assert isinstance(embedder, OnnxEmbedder)
    vectors = embedder.embed(TEXTS)
    assert embedder._session.get_session_options().intra_op_num_threads == 1
    for text, mine, theirs in zip(TEXTS, vectors, torch_vectors, strict=True):
        assert cosine(mine, theirs) > 0.9999, text[:40]
