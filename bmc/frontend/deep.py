"""Running the front end where `MAX_DEPTH` levels of nesting fit.

Lowering recurses once per level of an expression (`relu(dense(...))` is a call inside a call), through names used
before their definition, and through layers calling layers; `Lowerer.expr` counts those levels and stops at
`MAX_DEPTH` with a located error, and `check_nesting` bounds every other walk over the AST. `run_deep` gives that
recursion room: a recursion limit of `FRAMES_PER_LEVEL` Python frames per level, on a thread whose stack holds it
(whatever stack the calling thread has), so deep but legal input never meets a `RecursionError`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from bmc.syntax.nesting import MAX_DEPTH

T = TypeVar("T")

FRAMES_PER_LEVEL = 12  # the most Python frames between two levels (measured: tests/test_hostile_input.py)
RECURSION_LIMIT = MAX_DEPTH * FRAMES_PER_LEVEL + 2000  # and room for what runs at the deepest level
STACK_BYTES = 512 * 2**20  # C stack for that many frames, with a wide margin (reserved address space, not memory)

_lock = threading.Lock()
_active = 0  # deep runs in progress; the recursion limit is restored when the last one ends
_saved_limit = 0
_local = threading.local()


def run_deep(fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` on a thread with room for `MAX_DEPTH` levels of lowering; its exception is re-raised
    here. Nested calls run directly on the deep thread they are already on."""
    if getattr(_local, "deep", False):
        return fn(*args, **kwargs)
    result: list = []
    error: list[BaseException] = []

    def target() -> None:
        _local.deep = True
        try:
            result.append(fn(*args, **kwargs))
        except BaseException as e:
            error.append(e)

    global _active, _saved_limit
    with _lock:
        if _active == 0:
            _saved_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_saved_limit, RECURSION_LIMIT))
        _active += 1
    try:
        with _lock:
            previous = threading.stack_size(STACK_BYTES)
            try:
                thread = threading.Thread(target=target, name="bmc-front-end", daemon=True)
                thread.start()
            finally:
                threading.stack_size(previous)
        thread.join()
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                sys.setrecursionlimit(_saved_limit)
    if error:
        raise error[0]
    return result[0]
