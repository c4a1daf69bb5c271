"""The parsing server: a process `Parser` starts, that prepares once and runs each job in a child.

`Parser` runs `serve` in a fresh Python process (`python -c`), never a fork of the caller, which
may be multi-threaded. The server prepares itself (`preparation.py`), says whether it is ready,
then answers the caller's requests one at a time (`protocol.py`), each in a child forked from it
(`children.py`) under a time and a memory limit (`sandbox.py`). The caller's process never
imports this module, nor unstructured.
"""

from __future__ import annotations

import gc
import os
from multiprocessing.connection import Connection

from quire.content.parsing import protocol
from quire.content.parsing.children import Child, reap
from quire.content.parsing.errors import ParserCrashed, ParserUnavailable
from quire.content.parsing.preparation import readiness


def serve(fd: int) -> None:
    """The parsing server: prepare once, then run each request in a child forked from it.

    The caller's connection is `fd`; the server exits when it closes.
    """
    connection = Connection(fd)
    try:
        greeting: protocol.Reply = (protocol.READY, readiness())
    except ParserUnavailable as exc:
        greeting = (protocol.UNAVAILABLE, str(exc))
    try:
        connection.send(greeting)
    except OSError:  # the caller stopped (a worker shutting down) while this process prepared
        os._exit(0)
    if greeting[0] != protocol.READY:
        return
    # Every object made so far (unstructured, spaCy, pdfminer: hundreds of MB) is kept out of
    # the garbage collector's reach: a collection in a forked child would otherwise write to all
    # of them and copy every page.
    gc.freeze()
    child: Child | None = None
    while True:
        try:
            job, args, timeout, memory_limit = connection.recv()
        except (EOFError, OSError):  # the caller is gone or closed the parser
            os._exit(0)  # nothing to clean up; an orderly shutdown of spaCy & co. takes a second
        except Exception as exc:  # a job this process cannot import
            connection.send(protocol.error(ParserUnavailable.code, f"bad request: {exc!r}"))
            continue
        if child is None:
            child = Child.start(connection)
        if child is None:
            reply = protocol.error(ParserCrashed.code, "could not start a parsing child")
        else:
            reply, keep = child.run(job, args, timeout, memory_limit)
            if not keep:
                child.retire()
                child = None
        del job, args  # the document's bytes
        reap()
        try:
            connection.send(reply)
        except OSError:
            os._exit(0)
