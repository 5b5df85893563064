"""`make lab` starts wherever the tests run: as root, without a display, on a chosen port (tools/lab.py)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lab(load_tool):
    return load_tool("lab")


def test_command_adds_allow_root_and_no_browser_only_when_needed(lab):
    cmd, notes = lab.lab_command(9999, "t", root=True, display=False)
    assert "--allow-root" in cmd and "--no-browser" in cmd and "--port=9999" in cmd and len(notes) == 2
    cmd, notes = lab.lab_command(9999, "t", root=False, display=True)
    assert "--allow-root" not in cmd and "--no-browser" not in cmd and notes == []


def test_news_popup_is_switched_off(lab, tmp_path):
    path = lab.quiet_news(tmp_path)
    settings = json.loads(path.read_text())["@jupyterlab/apputils-extension:notification"]
    assert settings == {"fetchNews": "false", "checkForUpdates": False}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_serves_the_notebooks_over_http(tmp_path):
    port, token = _free_port(), "ftlab-test-token"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    env.pop("DISPLAY", None)
    log = tmp_path / "lab.log"
    with open(log, "w") as out:  # a file, not a pipe: a chatty server cannot block on a full pipe
        proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "lab.py"), "--port", str(port),
                                 "--token", token], stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline, page = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(1)
        assert page is not None and "JupyterLab" in page, f"lab did not come up: {log.read_text()[-2000:]}"
        lines = log.read_text().splitlines()
        assert f"http://127.0.0.1:{port}/lab?token={token}" in lines  # the URL on its own line
        listing = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=10))
        names = {item["name"] for item in listing["content"]}
        assert "05_prefix_tuning.ipynb" in names and "01_full_finetuning.ipynb" in names
    finally:
        proc.terminate()
        proc.wait(timeout=30)
