"""The exporter's own resource counts, for `/api/status` ("runtime") and the soak benchmark.

Counts, not rates: what a leak makes grow. Tasks are the running loop's (`None` outside
one); file descriptors, sockets and RSS come from `/proc/self` (`None` where there is none).
Cheap enough for an occasional request: the most expensive part, `gc.get_objects()`, is a
few milliseconds for a running exporter's ~100,000 tracked objects.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from typing import TypedDict

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class RuntimeCounts(TypedDict):
    asyncio_tasks: int | None  # tasks of the running event loop (not yet done)
    threads: int  # live Python threads
    gc_objects: int  # objects tracked by the garbage collector, frozen ones included
    gc_frozen: int  # of which frozen (`gc.freeze()`: left out of collections)
    open_fds: int | None  # open file descriptors (sockets included)
    sockets: int | None  # of which sockets
    rss_bytes: int | None  # resident set size


def fd_counts(pid: int | str = "self") -> tuple[int, int] | None:
    """(open file descriptors, of which sockets) of a process, from /proc; None if unknown."""
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    sockets = 0
    for name in names:
        try:
            if os.readlink(f"{folder}/{name}").startswith("socket:"):
                sockets += 1
        except OSError:  # closed in between (the listing's own descriptor, for one)
            continue
    return len(names), sockets


def rss_bytes(pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def thread_count(pid: int | str = "self") -> int | None:
    """OS threads of a process (any language's), from /proc; None if unknown."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


def runtime_counts() -> RuntimeCounts:
    try:
        tasks: int | None = len(asyncio.all_tasks())
    except RuntimeError:  # no running loop
        tasks = None
    fds = fd_counts()
    return RuntimeCounts(
        asyncio_tasks=tasks,
        threads=threading.active_count(),
        gc_objects=len(gc.get_objects()) + gc.get_freeze_count(),
        gc_frozen=gc.get_freeze_count(),
        open_fds=None if fds is None else fds[0],
        sockets=None if fds is None else fds[1],
        rss_bytes=rss_bytes(),
    )
