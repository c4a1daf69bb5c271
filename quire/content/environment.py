"""What content code needs from its process: blob store, embedder, parser, limits, and the
programs that follow an ingestion or a deletion.

`app` builds one ContentEnvironment from the settings when a process starts, as part of the
process's services; programs read it from their context (`content_of(ctx.services)`), routes
from the app (`ContentDep`). The parser (a child process with unstructured loaded) is started
only where documents are parsed: in workers, on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from quire.core.blobs import BlobStore
from quire.core.embeddings import Embedder, get_embedder
from quire.core.settings import (
    RECALL_DENSE_WEIGHT,
    SEARCH_DENSE_WEIGHT,
    TOOL_SEARCH_DENSE_WEIGHT,
    TOOL_SEARCH_WORD_WEIGHT,
)

if TYPE_CHECKING:
    from quire.content.parsing import Parser


@dataclass
class ContentEnvironment:
    blobs: BlobStore
    embedding_model: str
    parse_timeout: float = 120.0
    parse_memory_mb: int = 2048
    parse_children: int = 1  # files parsed at once, each in its own child
    parse_range_pages: int = 25  # long PDFs, Word files, HTML parsed in parts this long; 0: whole
    max_upload_bytes: int = 100 * 1024 * 1024
    search_ef: int = 100
    dense_weight: float = SEARCH_DENSE_WEIGHT  # document search's
    recall_dense_weight: float = RECALL_DENSE_WEIGHT
    tool_dense_weight: float = TOOL_SEARCH_DENSE_WEIGHT
    tool_word_weight: float = TOOL_SEARCH_WORD_WEIGHT
    embedding_runtime: str = "onnx"
    embedding_threads: int = 0  # per embedding call; see core.embeddings.get_embedder
    model_cache_dir: Path | None = None
    # Programs started for each indexed version and each deleted document (memory drawn from
    # documents, memory retracted with them): the composition root names them, content knows none.
    after_index: tuple[str, ...] = ()
    on_delete: tuple[str, ...] = ()
    _parser: Parser | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def embedder(self) -> Embedder:
        return get_embedder(
            self.embedding_model,
            runtime=self.embedding_runtime,
            cache_dir=self.model_cache_dir,
            threads=self.embedding_threads,
        )

    def parser(self) -> Parser:
        with self._lock:
            if self._parser is None:
                from quire.content.parsing import Parser

                self._parser = Parser(
                    timeout=self.parse_timeout,
                    memory_limit_mb=self.parse_memory_mb,
                    children=self.parse_children,
                )
            return self._parser

    def close(self) -> None:
        with self._lock:
            if self._parser is not None:
                self._parser.close()
                self._parser = None


def content_of(services: Any) -> ContentEnvironment:
    """The content layer's part of a process's services (a program's `ctx.services`, the app's)."""
    environment = getattr(services, "content", None)
    if not isinstance(environment, ContentEnvironment):
        raise RuntimeError("this process's services hold no content environment")
    return environment


def get_content(request: Request) -> ContentEnvironment:
    return content_of(request.app.state.services)


ContentDep = Annotated[ContentEnvironment, Depends(get_content)]
