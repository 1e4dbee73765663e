"""The Dagster UI in a real browser: Debian's chromium driven by Playwright (never `playwright install`).

Starts `dagster-webserver` and `dagster-daemon` on the repository's workspace.yaml over an isolated
DAGSTER_HOME, checks the asset graph shows every asset, then materializes the whole graph for one
model from the lineage page — selection `key:"base_model"+`, *Materialize all…*, partition
demo-llama, *Launch backfill* — and waits for the variant's Model Registry entry.
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
RECIPE = "w8a16-rtn"  # data-free and near lossless: approved, so it reaches the registry

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
def one_recipe(project_state, tmp_path, monkeypatch):
    """The catalog the UI's processes see: demo-llama with one recipe (the catalog sensor adds no
    others), and evaluation capped at 200 items per task to keep the browser test short."""
    catalog = tmp_path / "models.yaml"
    catalog.write_text(f"models:\n  - key: {MODEL}\n    source: demo\n    task_set: demo\n"
                       f"    recipes: [{RECIPE}]\n")
    monkeypatch.setenv("DMC_MODELS_FILE", str(catalog))
    monkeypatch.setenv("DMC_EVAL_LIMIT", "200")
    return catalog


@pytest.fixture
def dagster_ui(project_state, demo_model, one_recipe, tmp_path):
    """The webserver over the test's DAGSTER_HOME; yields (base URL, start_daemon)."""
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DAGSTER_DISABLE_TELEMETRY": "1"}
    env.pop("DMC_AUTOMATION", None)  # watch sensor and nightly schedule stay off
    procs = []
    logs = []

    def start(name: str, args: list[str]) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        return procs[-1]

    def start_daemon() -> subprocess.Popen:
        return start("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])

    try:
        start("webserver", [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                            "-w", str(ROOT / "workspace.yaml")])
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
        yield url, start_daemon
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


@pytest.mark.timeout(1800)  # the whole graph in real runs: ~3 min on 2 idle cores, far more on a shared one
def test_materialize_the_whole_graph_for_one_model_from_the_ui(browser_binary, dagster_ui, project_state, tmp_path):
    url, start_daemon = dagster_ui
    from dagster import AssetKey, DagsterInstance
    from dagster._core.execution.backfill import BulkActionStatus
    from playwright.sync_api import sync_playwright

    from dagster_project.registry import open_registry

    # The partitions. The daemon starts after the launch: its catalog sensor would add every
    # built-in recipe, and a backfill from base_model[demo-llama] covers every recipe partition
    # that exists when it is launched (right for users; minutes of CPU work per recipe here).
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("models", [MODEL])
        instance.add_dynamic_partitions("recipes", [RECIPE])

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            # 1. the asset graph shows every asset (groups expanded in its sidebar)
            page.goto(f"{url}/asset-groups", wait_until="networkidle")
            _dismiss_community_modal(page)
            for group in GROUPS:
                label = page.get_by_text(group, exact=True).first
                label.wait_for()
                box = label.bounding_box()
                page.mouse.click(box["x"] - 40, box["y"] + box["height"] / 2)  # the group's caret
            for asset in ASSETS:
                page.get_by_text(asset, exact=True).first.wait_for()

            # 2. select base_model and everything downstream of it, Materialize all → one model → Launch backfill
            page.locator(".CodeMirror").first.click()
            page.keyboard.type('key:"base_model"+')
            page.keyboard.press("Enter")
            page.get_by_role("button", name="Materialize all…").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("Launch runs to materialize 8 assets").wait_for()  # the whole graph
            dialog.get_by_text("Select a partition or create one").click()
            page.locator(f'text="{MODEL}" >> visible=true').first.click()  # the list item, not its measure copy
            page.keyboard.press("Escape")
            page.get_by_role("button", name="Launch backfill").click()
            page.get_by_role("button", name="Launch backfill").wait_for(state="detached")  # dialog closed
            page.screenshot(path=str(tmp_path / "launched.png"))
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"screenshot: {tmp_path / 'failure.png'}; logs: {tmp_path}/webserver.log, daemon.log")
            raise
        finally:
            browser.close()

    # 3. the daemon runs the backfill: base → calibration → base evaluation → variant → evaluation →
    #    checks → publication; wait for the variant's registry entry
    start_daemon()
    with DagsterInstance.get() as instance:
        [backfill] = instance.get_backfills()
        deadline = time.monotonic() + 1500
        while True:
            versions = [v for v in open_registry().list_versions()
                        if v.properties.get("base_model") == MODEL and v.properties.get("recipe") == RECIPE]
            status = instance.get_backfill(backfill.backfill_id).status
            if versions and status != BulkActionStatus.REQUESTED:
                break
            assert status in (BulkActionStatus.REQUESTED, BulkActionStatus.COMPLETED_SUCCESS), (
                f"backfill {status}: {(tmp_path / 'daemon.log').read_text()[-3000:]}")
            assert time.monotonic() < deadline, f"no registry entry after 25 min (backfill {status})"
            time.sleep(5)
        assert status == BulkActionStatus.COMPLETED_SUCCESS
        for asset, partition in [("base_model", MODEL), ("calibration_dataset", MODEL), ("base_evaluation", MODEL),
                                 ("compressed_model", f"{MODEL}|{RECIPE}"), ("evaluation_report", f"{MODEL}|{RECIPE}"),
                                 ("registry_entry", f"{MODEL}|{RECIPE}"), ("model_comparison", MODEL)]:
            assert partition in instance.get_materialized_partitions(AssetKey(asset)), asset
    [version] = versions
    assert version.source_kind == "dagster" and float(version.properties["recovery_avg"]) >= 0


def _dismiss_community_modal(page):
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=15_000)  # it appears a few seconds after the page settles
    except Exception:
        return
    skip.click()
