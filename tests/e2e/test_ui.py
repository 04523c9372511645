"""The Dagster web UI as a user meets it: `dagster dev` on our definitions, in Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from cfap_orchestration.defs.ingest.raw_tables import RAW_TABLES

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_loaded(base: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}")
        try:
            body = httpx.post(f"{base}/graphql", json={"query": query}, timeout=5).json()
            entries = body["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the code location did not load within {timeout}s")


@pytest.fixture
def dagster_ui(cfap_home: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    dagster_home = cfap_home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    port = _free_port()
    log = (cfap_home / "dagster-dev.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so one signal stops all of it
    )
    try:
        _wait_until_loaded(f"http://127.0.0.1:{port}", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _open(context: BrowserContext, url: str, errors: list[str]) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page


def _wait_for_nodes(page: Page, names: list[str], screenshot: Path) -> None:
    try:
        for name in names:
            node = page.locator(f'svg foreignObject [data-tooltip="{name}"]')
            node.first.wait_for(state="visible", timeout=60_000)
        page.wait_for_timeout(1000)
    finally:
        page.screenshot(path=str(screenshot))


def test_lineage_runs_from_the_extracts_through_staging_to_the_marts(
    dagster_ui: str, tmp_path: Path
) -> None:
    errors: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(dir=tmp_path),
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1600, "height": 2600},  # the whole column of extracts
            args=CHROMIUM_FLAGS,
        )
        # The global graph collapses to groups: reference and ingest feed staging feeds marts.
        overview = _open(context, f"{dagster_ui}/asset-groups", errors)
        for group in ("ingest", "reference", "staging", "marts"):
            overview.locator("svg foreignObject").get_by_text(group, exact=True).first.wait_for(
                state="visible", timeout=60_000
            )
        overview.screenshot(path=str(tmp_path / "lineage-groups.png"))
        # The ingest group: one node per raw extract.
        ingest = _open(
            context, f"{dagster_ui}/locations/cfap_orchestration/asset-groups/ingest", errors
        )
        _wait_for_nodes(ingest, [t.name for t in RAW_TABLES], tmp_path / "lineage-ingest.png")
        # A mart's upstream lineage reaches back to the API extracts.
        mart = _open(
            context,
            f"{dagster_ui}/assets/marts/fct_marketing_daily?view=lineage&lineageScope=upstream"
            "&lineageDepth=10",
            errors,
        )
        _wait_for_nodes(
            mart,
            ["fct_marketing_daily", "stg_meta_ads__insights", "meta_ads_insights"],
            tmp_path / "lineage-mart.png",
        )
        context.close()
    assert not errors, errors
