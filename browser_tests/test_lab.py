"""A learner's path in a real browser: JupyterLab on localhost, headless Chromium driven by Playwright.

Runs notebook 01 top to bottom in the smoke profile, checks that widgets and plots rendered, types into
the review box and checks the output it drives changed, and saves a screenshot. `make test-browser`.
Needs Debian's chromium (/usr/bin/chromium, or $CHROMIUM) and the playwright package; no browser download.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
NOTEBOOK = "01_full_finetuning.ipynb"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, tmp_path / NOTEBOOK)
    # Lab only renders cells near the viewport by default; render them all so every output can be checked.
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port, token = free_port(), "ftlab-browser-test"
    env = {**os.environ, "FTLAB_PROFILE": "smoke", "FTLAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1",
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within 60 s")
    yield url, token, tmp_path
    server.terminate()
    server.wait(timeout=30)


def test_notebook_runs_and_widgets_respond_in_a_real_browser(lab):
    from playwright.sync_api import sync_playwright

    url, token, tmp_path = lab
    shots = Path(os.environ.get("FTLAB_SCREENSHOTS", tmp_path))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS,
                                     ignore_default_args=["--enable-automation"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                               "&& window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=60_000)
        page.wait_for_timeout(2000)  # the kernel connects
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function("document.body.innerText.includes('all lessons hold in the smoke profile')",
                               timeout=240_000)
        assert page.locator(".jp-OutputArea-output img").count() >= 4, "plots rendered as images"
        box = page.locator(".widget-text input").first
        assert page.locator(".widget-dropdown select").count() >= 1 and box.count() == 1, "widgets rendered"
        output = box.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')]")
        before = output.inner_text()
        assert "P(positive)" in before
        box.fill("Dreadful, boring and far too long; I walked out.")
        box.press("Enter")
        page.wait_for_function("([el, old]) => el.innerText !== old", arg=[output.element_handle(), before],
                               timeout=30_000)
        after = output.inner_text()
        assert "P(positive)" in after and after != before, "the widget drives its output"
        box.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "lab-notebook01.png"), full_page=False)
        browser.close()
