"""Giving memory back to the machine after a large piece of work.

CPython frees a long document's elements (hundreds of thousands of small objects) into glibc's
arenas, which keep the pages: the worker stayed at 1.8 GB resident after the large documents of
an ingest were done. `malloc_trim` returns the free pages at the top of every arena to the kernel.

That is not enough in a worker: glibc raises its mmap threshold each time a large block is freed
(up to 32 MB), so later large blocks (ONNX Runtime's activations, a part's parsed elements) land
in the arenas of the worker's eight threads, where a few live objects pin freed pages between
them. `return_memory_promptly` fixes both thresholds, so a large block is its own mapping and
goes back the moment it is freed (bench/ingest.py --mixed: the worker grew by 428 MiB over the
run with the default thresholds, 144 MiB with these).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
from collections.abc import Callable

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 128 * 1024  # glibc's own default threshold, held instead of raised


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name is not None else None
    except OSError:
        return None


def return_memory_promptly() -> bool:
    """Have the allocator map every large block on its own and trim its heaps as they free, for
    a long-lived process that handles large documents now and then. Leaves the thresholds alone
    where the environment sets them (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`); returns
    whether the allocator took them (False off glibc)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    taken = True
    thresholds = ((M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"), (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"))
    for parameter, variable in thresholds:
        if variable not in os.environ:
            taken = bool(mallopt(parameter, LARGE_BLOCK)) and taken
    return taken


def _malloc_trim() -> Callable[[int], int] | None:
    trim: Callable[[int], int] | None = getattr(_libc(), "malloc_trim", None)  # glibc only
    return trim


def release_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the kernel, where it can."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
