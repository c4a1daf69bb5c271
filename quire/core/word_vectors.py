"""Static word-piece vectors: a text's vector is the mean of its tokens' vectors.

The vectors are WordLlama's `l2_supercat` (256 dimensions), shipped inside the `wordllama`
package, read here with safetensors and tokenizers only (its own loader looks for the tokenizer
in a folder the wheel does not have, then on the network). No network, about a millisecond for
a request.

Why a second embedding: the tool catalog's search blends this view with all-MiniLM-L6-v2's and
BM25's. Trained differently, it is wrong on other requests than the transformer: on MetaTool
(bench/tools.py) adding it lifted recall@5 from descriptions alone and both-tools-in-top-5 by
about two points, while alone it is a weaker leg than either.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quire.core.embeddings import Embedder

WORD_VECTORS = "wordllama-l2-supercat-256"
WORD_DIMENSIONS = 256


class WordVectors(Embedder):
    """Mean of WordLlama's token vectors, of unit length."""

    def __init__(self, folder: Path) -> None:
        import numpy
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.name = WORD_VECTORS
        self.dim = WORD_DIMENSIONS
        (matrix,) = load_file(str(folder / "weights" / "l2_supercat_256.safetensors")).values()
        self._matrix: Any = numpy.ascontiguousarray(matrix, dtype=numpy.float32)
        tokenizer = folder / "tokenizers" / "l2_supercat_tokenizer_config.json"
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy

        vectors: list[list[float]] = []
        for encoding in self._tokenizer.encode_batch(list(texts), add_special_tokens=False):
            ids = numpy.clip(numpy.asarray(encoding.ids, dtype=numpy.int64), 0, len(self._matrix) - 1)
            mean = self._matrix[ids].mean(axis=0) if len(ids) else numpy.zeros(self.dim, dtype=numpy.float32)
            norm = float(numpy.linalg.norm(mean))
            vectors.append((mean / norm if norm > 0 else mean).tolist())
        return vectors


@functools.cache
def word_vectors() -> WordVectors:
    """The vectors, loaded once per process (16 MB) from the installed `wordllama` package.

    Found without importing the package: its `__init__` configures the root logger."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the wordllama package is not installed; `make install` installs it")
    return WordVectors(Path(next(iter(spec.submodule_search_locations))))
