"""Giving memory back to the machine after a large piece of work.

CPython frees a long document's elements (hundreds of thousands of small objects) into glibc's
arenas, which keep the pages: the worker stayed at 1.8 GB resident after the large documents of
an ingest were done. `malloc_trim` returns the free pages at the top of every arena to the kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the kernel, where it can."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
