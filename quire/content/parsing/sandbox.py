"""The limits a parsing child runs under: its time, its memory, and its life.

The time limit is the server's to enforce: at a job's deadline it kills the child's process group
(`kill_group`), which the child made its own (`isolate`), so whatever the child started dies too.
The memory limit is the child's own: before each job it caps its address space at its current
size plus the job's allowance (`limit_address_space`), so that a zip bomb gets a MemoryError in
the child instead of waking the kernel's out-of-memory killer.
"""

from __future__ import annotations

import contextlib
import os
import signal

# A child that runs out of memory while reporting that it ran out of memory exits with this code.
EXIT_MEMORY = 86
_PR_SET_PDEATHSIG = 1


def isolate() -> None:
    """Give this forked child its own process group, and make it die with the server."""
    with contextlib.suppress(BaseException):
        os.setpgid(0, 0)  # its own process group, so a timeout also kills what it started
        _die_with_server()


def kill_group(pid: int) -> None:
    """Kill the child `pid` and everything it started; a no-op when it is gone already."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _die_with_server() -> None:
    """Ask Linux to kill this child when the server dies (it would otherwise run on, orphaned)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def address_space() -> int:
    """This process's virtual memory size in bytes (what RLIMIT_AS counts)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def limit_address_space(memory_limit: int) -> None:
    """Cap this process's address space at its current size plus `memory_limit` bytes."""
    import resource

    size = address_space()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + memory_limit if hard == resource.RLIM_INFINITY else min(hard, size + memory_limit)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def memory_message(memory_limit: int) -> str:
    """What a ParseMemoryExceeded says for a limit of `memory_limit` bytes."""
    return f"parsing needed more than the {memory_limit // (1024 * 1024)} MB memory limit"
