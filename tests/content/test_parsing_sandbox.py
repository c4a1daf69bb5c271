"""The memory cap on its own, in a throwaway process: an allocation past it is a MemoryError."""

from __future__ import annotations

import os
import subprocess
import sys

from quire.content.parsing.sandbox import address_space, memory_message

CAPPED = """
from quire.content.parsing.sandbox import limit_address_space
limit_address_space(64 * 1024 * 1024)
small = bytearray(16 * 1024 * 1024)
try:
    big = bytearray(256 * 1024 * 1024)
except MemoryError:
    print("MemoryError")
"""


def test_an_allocation_past_the_cap_raises_memory_error_and_a_smaller_one_does_not() -> None:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}

    result = subprocess.run(
        [sys.executable, "-c", CAPPED], capture_output=True, text=True, timeout=60, env=environment
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MemoryError"


def test_the_address_space_is_this_process_size() -> None:
    assert address_space() > 1024 * 1024


def test_the_memory_message_names_the_limit_in_megabytes() -> None:
    assert memory_message(200 * 1024 * 1024) == "parsing needed more than the 200 MB memory limit"
