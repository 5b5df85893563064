"""One run in its own process, so the memory it reports is its own, and this process's resident memory.

``ftlab compare`` trains every run through ``isolated`` (protocol point 6 in compare.py); ``train.py`` reads
``rss_mb`` as the CPU memory figure of a training run.
"""

from __future__ import annotations

import os

from .errors import FtlabError


def rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """The largest resident memory this process has had, in MiB."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _child(conn, fn, *args):
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as e:  # report, so the parent records it and carries on
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def isolated(fn, *args, what: str = "") -> dict:
    """``fn(*args)`` in a forked process (Linux/macOS CPU), so its peak memory is its own."""
    import multiprocessing as mp

    import torch

    if torch.cuda.is_available() or os.name == "nt":  # CUDA keeps per-process allocator stats; fork breaks it
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return fn(*args)
    context = mp.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    proc = context.Process(target=_child, args=(child, fn, *args))
    proc.start()
    child.close()
    status, value = parent.recv() if parent.poll(None) else ("error", "the run's process ended without a result")
    proc.join()
    if status != "ok":
        raise FtlabError(f"{what or fn.__name__} failed: {value}")
    return value
