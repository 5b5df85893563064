"""Start JupyterLab on notebooks/ wherever the tests pass: as root, without a display, on a chosen port.

    python tools/lab.py [--port 8888] [--token TOKEN] [--dry-run]

- as root (containers, cloud VMs) JupyterLab refuses to start without --allow-root: added, and said so;
- without a display (no $DISPLAY / $WAYLAND_DISPLAY on Linux) no browser launch is attempted;
- the URL with its token is printed on its own line, so it can be copied or opened by hand;
- the first screen is clean: JupyterLab's news and update-check pop-up is switched off for this venv.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# JupyterLab reads default settings from <prefix>/share/jupyter/lab/settings/overrides.json.
QUIET_SETTINGS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


def has_display() -> bool:
    if sys.platform != "linux":
        return True  # macOS and Windows always have a desktop to open a browser on
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def quiet_news(prefix: Path = Path(sys.prefix)) -> Path:
    """Write the no-news override into this environment's JupyterLab settings (kept if already there)."""
    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(path.read_text()) if path.exists() else {}
    for plugin, values in QUIET_SETTINGS.items():
        settings.setdefault(plugin, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1))
    return path


def lab_command(port: int, token: str, root: bool, display: bool) -> tuple[list[str], list[str]]:
    """The jupyter lab argv, and the notes to print about the choices made."""
    cmd = [sys.executable, "-m", "jupyterlab", str(ROOT / "notebooks"), f"--port={port}",
           f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"]
    notes = []
    if root:
        cmd.append("--allow-root")
        notes.append("running as root: added --allow-root")
    if not display:
        cmd.append("--no-browser")
        notes.append("no display: not opening a browser; open the URL below yourself")
    return cmd, notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Start JupyterLab on the ftlab notebooks.")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8888))
    ap.add_argument("--token", default=None, help="default: a fresh random token")
    ap.add_argument("--dry-run", action="store_true", help="print the command, start nothing")
    args = ap.parse_args(argv)
    token = args.token or secrets.token_hex(16)
    cmd, notes = lab_command(args.port, token, is_root(), has_display())
    for note in notes:
        print(f"make lab: {note}")
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    quiet_news()
    print(f"make lab: JupyterLab on port {args.port}; open this URL:\n"
          f"http://127.0.0.1:{args.port}/lab?token={token}", flush=True)
    os.execv(sys.executable, cmd)  # the server replaces this process: Ctrl-C stops it as usual


if __name__ == "__main__":
    sys.exit(main())
