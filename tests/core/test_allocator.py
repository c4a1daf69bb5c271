"""A long-lived process gives a large piece of work's memory back when it is done (issue 19: the
worker stayed 400-700 MB larger after two big documents)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quire.core.memory import return_memory_promptly

ROOT = Path(__file__).resolve().parents[2]

# Large blocks freed between small ones that stay: the pattern of a worker thread that embedded a
# long document (large activations) while it kept a few rows and log records (small objects).
WORK = """
import sys, psutil
from quire.core.memory import return_memory_promptly
if sys.argv[1] == "promptly":
    return_memory_promptly()
process = psutil.Process()
before = process.memory_info().rss
first = bytearray(8 << 20)
del first  # glibc raises its mmap threshold past 8 MB: the blocks below come from its heap
blocks, kept = [], []
for _ in range(300):
    blocks.append(bytearray(1 << 20))
    kept.append(bytearray(2000))
del blocks
print((process.memory_info().rss - before) >> 20)
"""


def grown_mib(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", WORK, mode], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return int(result.stdout)


@pytest.mark.skipif(not return_memory_promptly(), reason="the allocator is not glibc's")
def test_freed_large_blocks_go_back_to_the_system() -> None:
    # 300 MiB were allocated and freed; with glibc's moving threshold most of it stays resident.
    assert grown_mib("promptly") < 64
    assert grown_mib("default") > 200  # the test's pattern does strand memory without it
