"""The Dagster UI in a real browser: Debian's chromium driven by Playwright (never `playwright install`).

Starts `dagster-webserver` and `dagster-daemon` on the repository's workspace.yaml over an isolated
DAGSTER_HOME, checks the asset graph shows every asset, launches base_model[demo-llama] through
the Materialize dialog and waits for the run to succeed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DMC_CHROMIUM", "/usr/bin/chromium")  # scripts/install_chromium.sh installs it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ASSETS = ["base_model", "calibration_dataset", "compressed_model", "base_evaluation", "evaluation_report",
          "model_comparison", "hub_release", "registry_entry"]
GROUPS = ["compression", "evaluation", "models", "publication"]
MODEL = "demo-llama"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")  # session scope: set up before the (session) demo model
def browser_binary() -> str:
    """Checked before the UI starts: a missing browser fails at once (never a skip)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install_chromium.sh` (Debian's chromium via apt-get)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the Python package `playwright` is missing: pip install playwright (no browser download needed)")
    return CHROMIUM


@pytest.fixture
def dagster_ui(project_state, demo_model, tmp_path):
    """webserver + daemon over the test's DAGSTER_HOME; yields the base URL."""
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DAGSTER_DISABLE_TELEMETRY": "1"}
    env.pop("DMC_AUTOMATION", None)  # watch sensor and nightly schedule stay off
    procs = []
    logs = []
    try:
        for name, args in [("webserver", [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                                          "-w", str(ROOT / "workspace.yaml")]),
                           ("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])]:
            log = open(tmp_path / f"{name}.log", "w")
            logs.append(log)
            procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or procs[0].poll() is not None:
                pytest.fail(f"dagster-webserver did not answer /server_info:\n{(tmp_path / 'webserver.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        for p in procs:  # only the processes (and their sessions) this fixture started
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        for log in logs:
            log.close()


def test_materialize_demo_base_model_from_the_ui(browser_binary, dagster_ui, project_state, tmp_path):
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus
    from playwright.sync_api import sync_playwright

    # The partitions (the catalog sensor adds the same ones once the daemon ticks).
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("models", [MODEL])
        instance.add_dynamic_partitions("recipes", ["w4a16-rtn", "w8a16-rtn"])

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            # 1. the asset graph shows every asset (groups expanded in its sidebar)
            page.goto(f"{dagster_ui}/asset-groups", wait_until="networkidle")
            _dismiss_community_modal(page)
            for group in GROUPS:
                label = page.get_by_text(group, exact=True).first
                label.wait_for()
                box = label.bounding_box()
                page.mouse.click(box["x"] - 40, box["y"] + box["height"] / 2)  # the group's caret
            for asset in ASSETS:
                page.get_by_text(asset, exact=True).first.wait_for()

            # 2. Materialize → pick the partition → Launch
            page.goto(f"{dagster_ui}/assets/base_model", wait_until="networkidle")
            _dismiss_community_modal(page)
            page.get_by_role("button", name="Materialize…").click()
            page.get_by_text("Select a partition or create one").click()
            page.get_by_text(MODEL, exact=True).first.click()
            page.keyboard.press("Escape")
            page.get_by_role("button", name="Launch 1 run").click()
            page.get_by_role("button", name="Launch 1 run").wait_for(state="detached")  # dialog closed
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(tmp_path / "launched.png"))

            # 3. the run appears in the runs list and succeeds
            deadline = time.monotonic() + 240
            while True:
                page.goto(f"{dagster_ui}/runs", wait_until="networkidle")
                body = page.inner_text("body")
                if "Success" in body and "base_model" in body:
                    break
                if "Failure" in body:
                    raise AssertionError("the run failed in the UI")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no successful run after 240 s; runs page says:\n{body[-2000:]}")
                page.wait_for_timeout(3000)
            page.screenshot(path=str(tmp_path / "runs.png"))
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"screenshot: {tmp_path / 'failure.png'}; logs: {tmp_path}/webserver.log, daemon.log")
            raise
        finally:
            browser.close()

    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS]
        assert runs[0].tags.get("dagster/partition") == MODEL
        assert MODEL in instance.get_materialized_partitions(AssetKey("base_model"))


def _dismiss_community_modal(page):
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=2500)
    except Exception:
        return
    skip.click()
