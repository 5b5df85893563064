"""Results every notebook records, so the strategy notebook can compare methods measured on one budget.

One JSON file per profile, ``results/<profile>.json``: {method: {metric: value}}. ``$FTLAB_RESULTS``
names another folder (the tests use one, so they never write into the repository's results).

Two processes may record at once (pytest-xdist runs notebooks in parallel): each update holds a lock
on ``<profile>.json.lock`` for its read-modify-write and replaces the file in one step, so no record is
lost and no reader ever sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:
    msvcrt = None

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def results_dir() -> Path:
    """``$FTLAB_RESULTS`` when set, else the repository's ``results/``."""
    return Path(os.environ["FTLAB_RESULTS"]) if os.environ.get("FTLAB_RESULTS") else RESULTS_DIR


def _file(profile: str) -> Path:
    return results_dir() / f"{profile}.json"


@contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path``'s sidecar lock file (not on ``path``: ``os.replace`` swaps that file)."""
    with open(path.with_name(path.name + ".lock"), "a+b") as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        elif msvcrt is not None:
            while True:  # LK_LOCK gives up after 10 s; a long notebook may hold it longer on a slow disk
                try:
                    f.seek(0)
                    msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    time.sleep(0.05)
        try:
            yield
        finally:
            if fcntl is None and msvcrt is not None:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)


def _write_atomically(path: Path, text: str) -> None:
    # mkstemp makes the file private (0600); the results file keeps the mode it had, or 0644
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stored(value):
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


def record_result(profile, method: str, **values) -> dict:
    """Store ``values`` (numbers or short strings) for ``method`` under the profile's results file.
    A NaN or infinite float (a quantity not defined for this method) is stored as null, so the file stays JSON."""
    path = _file(getattr(profile, "name", profile))
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {k: _stored(v) for k, v in values.items()}
    with _locked(path):
        table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        table[method] = entry
        _write_atomically(path, json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return entry


def load_results(profile) -> dict:
    path = _file(getattr(profile, "name", profile))
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
