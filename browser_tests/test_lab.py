"""A learner's path in a real browser: JupyterLab on localhost, headless Chromium driven by Playwright.

Runs notebook 01 top to bottom in the smoke profile, checks that widgets and plots rendered, types into
the review box and checks the output it drives changed; runs notebook 06 and moves the LoRA rank slider
with the keyboard; saves a screenshot of each. `make test-browser`.
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

# On a learner's machine a missing browser skips these tests; in CI (FTLAB_REQUIRE_BROWSER=1, set by
# .ci/run) it is a failure, so the browser test can never pass by skipping.
REQUIRED = os.environ.get("FTLAB_REQUIRE_BROWSER") == "1"


@pytest.fixture(autouse=True)
def browser_available():
    import importlib.util

    missing = [what for what, ok in ((f"Chromium at {CHROMIUM}", Path(CHROMIUM).exists()),
                                     ("the playwright package", importlib.util.find_spec("playwright")))
               if not ok]
    if missing:
        message = f"no {' and no '.join(missing)} (apt-get install chromium; pip install -e '.[browser]')"
        pytest.fail(message) if REQUIRED else pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(notebook, tmp_path / notebook.name)
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


def run_notebook(page, url, token, notebook):
    """Open the notebook in Lab, run all cells, wait for its asserted lessons to pass."""
    page.goto(f"{url}/lab/tree/{notebook}?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=60_000)
    page.wait_for_timeout(2000)  # the kernel connects
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function("document.body.innerText.includes('all lessons hold in the smoke profile')",
                           timeout=300_000)
    assert "Traceback" not in page.locator(".jp-Notebook").inner_text(), "a cell raised"


def output_of(widget):
    return widget.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')]")


def wait_changed(page, output, before):
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[output.element_handle(), before],
                           timeout=30_000)
    return output.inner_text()


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS,
                                     ignore_default_args=["--enable-automation"])
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def test_notebook_01_runs_and_its_text_widget_responds(lab, browser_page):
    url, token, tmp_path = lab
    page, shots = browser_page, Path(os.environ.get("FTLAB_SCREENSHOTS", tmp_path))
    run_notebook(page, url, token, "01_full_finetuning.ipynb")
    assert page.locator(".jp-OutputArea-output img").count() >= 4, "plots rendered as images"
    box = page.locator(".widget-text input").first
    assert page.locator(".widget-dropdown select").count() >= 1 and box.count() == 1, "widgets rendered"
    output = output_of(box)
    before = output.inner_text()
    assert "P(positive)" in before
    box.fill("Dreadful, boring and far too long; I walked out.")
    box.press("Enter")
    after = wait_changed(page, output, before)
    assert "P(positive)" in after and after != before, "the widget drives its output"
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "lab-notebook01.png"), full_page=False)


def test_notebook_06_lora_rank_slider_drives_its_output(lab, browser_page):
    url, token, tmp_path = lab
    page, shots = browser_page, Path(os.environ.get("FTLAB_SCREENSHOTS", tmp_path))
    run_notebook(page, url, token, "06_lora.ipynb")
    slider = page.locator(".widget-slider", has_text="rank r").first
    assert slider.count() == 1, "the rank slider rendered"
    output = output_of(slider)
    before = output.inner_text()
    assert "rank 8," in before
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press("ArrowRight")
    # the readout changes at once; the printed explanation only after the kernel re-ran the function
    page.wait_for_function("el => el.innerText.includes('rank 9,')", arg=output.element_handle(), timeout=30_000)
    assert "rank 8," not in output.inner_text(), "the explorer's output was replaced, not appended"
    page.screenshot(path=str(shots / "lab-notebook06.png"), full_page=False)
