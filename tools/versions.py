"""Versions of the packages ftlab depends on, in the current environment; and a table across environments.

    python tools/versions.py freeze > constraints.txt.new     # this venv's versions as a constraints file
    python tools/versions.py json > versions.json              # the same, for the drift table
    python tools/versions.py table floor=a.json constraints=constraints.txt latest=b.json [--status k=v ...]
"""

from __future__ import annotations

import datetime
import importlib.metadata as md
import json
import platform
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Transitive packages whose version decides whether the notebooks work; pinned beside the direct ones.
ALSO = ["tokenizers", "huggingface_hub", "nbclient", "jupyter_server"]
KEY = ["torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "trl", "tokenizers",
       "huggingface_hub", "jupyterlab"]


def direct_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    return [re.split(r"[<>=!~\[ ;]", s)[0] for s in specs] + ALSO


def installed() -> dict[str, str]:
    out = {}
    for name in direct_dependencies():
        try:
            out[name] = md.version(name).split("+")[0]
        except md.PackageNotFoundError:
            pass
    return out


def read(path: str) -> dict[str, str]:
    """Versions from a JSON file written by `json`, or from a constraints file."""
    text = Path(path).read_text()
    if path.endswith(".json"):
        return json.loads(text)
    pins = (re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s#]+)", line) for line in text.splitlines())
    return {m.group(1): m.group(2) for m in pins if m}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def table(columns: dict[str, dict[str, str]], status: dict[str, str]) -> str:
    names = list(dict.fromkeys(KEY + [n for c in columns.values() for n in c]))
    cols = {k: {norm(n): v for n, v in c.items()} for k, c in columns.items()}
    lines = ["| package | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in names:
        vals = [cols[k].get(norm(name), "–") for k in columns]
        if len(set(vals)) > 1 or name in KEY:  # every key package, and anything that differs
            moved = " ⟵ moved" if len(set(v for v in vals if v != "–")) > 1 else ""
            lines.append(f"| {name}{moved} | " + " | ".join(vals) + " |")
    lines.append("| **checks** | " + " | ".join(status.get(k, "not run") for k in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "freeze"
    if what == "freeze":
        print((ROOT / "constraints.txt").read_text().split("\ntorch==")[0].rsplit("\n# Last refreshed", 1)[0])
        print(f"# Last refreshed: {datetime.date.today()}, Python {platform.python_version()}, "
              f"{platform.system()} {platform.machine()}.")
        for name, version in installed().items():
            print(f"{name}=={version}")
    elif what == "json":
        print(json.dumps(installed(), indent=1))
    elif what == "table":
        columns, status = {}, {}
        for arg in argv[1:]:
            key, _, value = arg.partition("=")
            if key.startswith("status:"):
                status[key[7:]] = value
            elif Path(value).exists():
                columns[key] = read(value)
        print(table(columns, status))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
