"""The Dagster web UI as a user meets it: `dagster dev` on our definitions, in Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from playwright.sync_api import BrowserContext, Page, sync_playwright

from cfap_orchestration.defs.ingest.raw_tables import RAW_TABLES
from cfap_orchestration.warehouse import DuckDBWarehouse

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "cfap_orchestration"
# Screenshots land here for CI to keep (and for the README); a temp folder by default.
ARTIFACTS_ENV = "CFAP_TEST_ARTIFACTS"
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


def _group_members(pgid: int) -> set[int]:
    """PIDs of every live process in a process group (from /proc)."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.add(int(entry.name))
    return members


@dataclass
class DagsterUI:
    base: str
    port: int
    home: Path
    members: set[int] = field(default_factory=set)

    @property
    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=30)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = httpx.post(
            f"{self.base}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        ).json()
        assert "errors" not in body, body
        return body["data"]


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get(ARTIFACTS_ENV) or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def dagster_ui(cfap_home: Path) -> Iterator[DagsterUI]:
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
    ui = DagsterUI(f"http://127.0.0.1:{port}", port, cfap_home)
    try:
        _wait_until_loaded(ui.base, process)
        yield ui
    finally:
        ui.members = _group_members(process.pid)  # webserver, daemon, code server, run workers
        _stop(process, ui.members)
        log.close()
    left = {pid for pid in ui.members if Path(f"/proc/{pid}").exists()}
    left -= {pid for pid in left if "Z" in _state(pid)}
    assert not left, f"processes left after stopping dagster dev: {sorted(left)}"


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _stop(process: subprocess.Popen[bytes], members: set[int]) -> None:
    """SIGTERM the group, wait; SIGKILL by PID whatever is still there."""
    os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in members):
        time.sleep(0.2)
    for pid in members:
        if Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


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


def _browser(p: object, tmp_path: Path) -> BrowserContext:
    return p.chromium.launch_persistent_context(  # type: ignore[attr-defined, no-any-return]
        tempfile.mkdtemp(dir=tmp_path),
        executable_path=CHROMIUM,
        headless=True,
        viewport={"width": 1600, "height": 2600},  # the whole column of extracts
        args=CHROMIUM_FLAGS,
    )


def test_lineage_runs_from_the_extracts_through_dbt_to_the_measurements(
    dagster_ui: DagsterUI, tmp_path: Path, artifacts: Path
) -> None:
    base = dagster_ui.base
    errors: list[str] = []
    with sync_playwright() as p:
        context = _browser(p, tmp_path)
        # The global graph collapses to groups, one graph: ingest and reference feed staging,
        # staging the marts, the marts the measurements, and those the reports.
        overview = _open(context, f"{base}/asset-groups", errors)
        for group in ("ingest", "reference", "staging", "marts", "measure", "report"):
            overview.locator("svg foreignObject").get_by_text(group, exact=True).first.wait_for(
                state="visible", timeout=60_000
            )
        overview.wait_for_timeout(1000)
        overview.screenshot(path=str(artifacts / "lineage-groups.png"))
        # The ingest group: one node per raw extract and landing-zone upload.
        ingest = _open(context, f"{base}/locations/{LOCATION}/asset-groups/ingest", errors)
        _wait_for_nodes(
            ingest,
            [t.name for t in RAW_TABLES] + ["offline_conversions", "experiment_definitions"],
            artifacts / "lineage-ingest.png",
        )
        # A mart's upstream lineage reaches back to the API extracts.
        mart = _open(
            context,
            f"{base}/assets/marts/fct_marketing_daily?view=lineage&lineageScope=upstream"
            "&lineageDepth=10",
            errors,
        )
        _wait_for_nodes(
            mart,
            ["fct_marketing_daily", "stg_meta_ads__insights", "meta_ads_insights"],
            artifacts / "lineage-mart.png",
        )
        # A geo readout's upstream lineage spans every layer (too many nodes to label at
        # that zoom: the layers' group boxes show), and its panel is its direct parent.
        readout_url = f"{base}/assets/causal/difference_in_differences?view=lineage"
        upstream = _open(context, f"{readout_url}&lineageScope=upstream&lineageDepth=10", errors)
        _wait_for_nodes(
            upstream,
            ["ingest", "reference", "staging", "marts", "measure"],
            artifacts / "lineage-geo-readout.png",
        )
        parents = _open(context, f"{readout_url}&lineageScope=upstream&lineageDepth=1", errors)
        _wait_for_nodes(
            parents,
            ["difference_in_differences", "fct_experiment_geo_panel"],
            artifacts / "lineage-geo-readout-parents.png",
        )
        # Schedules and sensors are listed on the automation page.
        automation = _open(context, f"{base}/automation", errors)
        for name in (
            "daily_refresh_schedule",
            "mmm_weekly_refit",
            "landing_zone_sensor",
            "new_geo_experiment_sensor",
            "job_status_sensor",
        ):
            automation.get_by_role("link", name=name).first.wait_for(timeout=60_000)
        automation.screenshot(path=str(artifacts / "automation.png"))
        context.close()
    assert not errors, errors


def _wait_for_run(ui: DagsterUI, run_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = ui.client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise TimeoutError(f"run {run_id} still {status} after {timeout}s")


def _runs_tagged(ui: DagsterUI, key: str, value: str) -> list[dict]:
    data = ui.graphql(
        "query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) "
        "{ ... on Runs { results { runId status } } } }",
        {"tags": [{"key": key, "value": value}]},
    )
    return list(data["runsOrError"]["results"])


def _ticks(ui: DagsterUI, sensor: str) -> list[dict]:
    data = ui.graphql(
        "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { "
        "sensorState { ticks(limit: 5) { status error { message } } } } } }",
        {
            "s": {
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
                "sensorName": sensor,
            }
        },
    )
    return list(data["sensorOrError"]["sensorState"]["ticks"])


def _wait_for(what: str, probe: object, timeout: float = 180) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()  # type: ignore[operator]
        if found:
            return found
        time.sleep(2)
    raise TimeoutError(f"{what} did not happen within {timeout}s")


def test_runs_sensors_and_schedules_work_live_through_the_daemon(dagster_ui: DagsterUI) -> None:
    # A materialization launched over GraphQL, run by the daemon's queue.
    run_id = dagster_ui.client.submit_job_execution(
        "__ASSET_JOB",
        repository_location_name=LOCATION,
        repository_name="__repository__",
        asset_selection=[["raw", "public_holidays"]],
    )
    assert _wait_for_run(dagster_ui, run_id) == "SUCCESS"

    # The landing sensor is on by default: a dropped upload is loaded by a run it requests.
    folder = dagster_ui.home / "landing" / "offline_conversions"
    folder.mkdir(parents=True)
    (folder / "calls.csv").write_text(
        "conversion_id,conversion_time,conversion_name,value,currency\n"
        "call-1,2025-05-01T10:00:00-05:00,phone_order,99.5,USD\n"
    )
    runs = _wait_for(
        "a landing run",
        lambda: [
            r
            for r in _runs_tagged(dagster_ui, "cfap/landing_kind", "offline_conversions")
            if r["status"] in ("SUCCESS", "FAILURE")
        ],
    )
    assert [r["status"] for r in runs] == ["SUCCESS"]  # type: ignore[union-attr]
    assert (folder / "loaded" / "calls.csv").exists()

    # The job-status sensor records every outcome in the warehouse.
    warehouse = DuckDBWarehouse(dagster_ui.home / "warehouse.duckdb")

    def recorded() -> bool:
        if not warehouse.table_exists("causal", "job_status"):
            return False
        rows = warehouse.query("SELECT run_id, status FROM causal.job_status")
        return {run_id, runs[0]["runId"]} <= set(rows["run_id"])  # type: ignore[index]

    _wait_for("job_status rows", recorded)
    loaded = warehouse.query("SELECT conversion_id FROM raw.offline_conversions")
    assert loaded["conversion_id"].tolist() == ["call-1"]

    # Every sensor has ticked in the daemon, none with an error.
    for sensor in ("landing_zone_sensor", "new_geo_experiment_sensor", "job_status_sensor"):
        ticks = _wait_for(f"a tick of {sensor}", lambda name=sensor: _ticks(dagster_ui, name))
        assert all(t["status"] != "FAILURE" for t in ticks), (sensor, ticks)  # type: ignore[union-attr]

    # The analysis job through the GraphQL client: a value outside its schema is refused.
    with pytest.raises(DagsterGraphQLClientError, match="method"):
        dagster_ui.client.submit_job_execution(
            "geo_lift_analysis",
            repository_location_name=LOCATION,
            repository_name="__repository__",
            run_config={"ops": {"analyze_geo_lift": {"config": {"method": "magic"}}}},
        )

    # Schedules start stopped; started over GraphQL, the daemon's scheduler takes them.
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "scheduleName": "daily_refresh_schedule",
    }
    started = dagster_ui.graphql(
        "mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { "
        "... on ScheduleStateResult { scheduleState { status } } "
        "... on PythonError { message } } }",
        {"s": selector},
    )
    assert started["startSchedule"]["scheduleState"]["status"] == "RUNNING", started
    health = dagster_ui.graphql(
        "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
    )
    daemons = {
        d["daemonType"]: d["healthy"]
        for d in health["instance"]["daemonHealth"]["allDaemonStatuses"]
        if d["required"]
    }
    assert daemons.get("SCHEDULER") and daemons.get("SENSOR"), daemons
    # Its next tick (07:00 UTC), evaluated by the code server: the day before's partition.
    tick = dagster_ui.graphql(
        "mutation($s: ScheduleSelector!, $t: Float) { scheduleDryRun(selectorData: $s, "
        "timestamp: $t) { __typename ... on DryRunInstigationTick { evaluationResult { "
        "runRequests { runKey tags { key value } } error { message } } } "
        "... on PythonError { message } } }",
        {"s": selector, "t": time.time()},
    )
    assert tick["scheduleDryRun"]["__typename"] == "DryRunInstigationTick", tick
    result = tick["scheduleDryRun"]["evaluationResult"]
    assert result["error"] is None, result
    (request,) = result["runRequests"]
    partition = {t["key"]: t["value"] for t in request["tags"]}["dagster/partition"]
    now = datetime.now(UTC)
    next_tick = now.replace(hour=7, minute=0, second=0, microsecond=0)
    if next_tick <= now:
        next_tick += timedelta(days=1)
    assert partition == (next_tick.date() - timedelta(days=1)).isoformat()  # its "yesterday"
