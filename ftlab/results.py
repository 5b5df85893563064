"""Results every notebook records, so the strategy notebook can compare methods measured on one budget.

One JSON file per profile, ``results/<profile>.json``: {method: {metric: value}}.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def _file(profile: str) -> Path:
    return RESULTS_DIR / f"{profile}.json"


def record_result(profile, method: str, **values) -> dict:
    """Store ``values`` (numbers or short strings) for ``method`` under the profile's results file."""
    name = getattr(profile, "name", profile)
    table = load_results(name)
    table[method] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}
    RESULTS_DIR.mkdir(exist_ok=True)
    _file(name).write_text(json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return table[method]


def load_results(profile) -> dict:
    path = _file(getattr(profile, "name", profile))
    return json.loads(path.read_text()) if path.exists() else {}
