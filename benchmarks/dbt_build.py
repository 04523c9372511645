"""dbt build cost on DuckDB: dbt against its own compiled SQL, at 1x and at >= 10M ad rows.

Works on copies of a sandbox warehouse that holds the raw tables (`make demo`; by default
`$CFAP_HOME/warehouse.duckdb`, never modified), in a temporary folder removed at the end:

1. **1x** is a plain copy (plus `raw.public_holidays` when the copy lacks it). **Kx**
   replicates the four raw ad tables K times in SQL (`cross join range(K)`, `campaign_id`
   suffixed with the replica index, every other column kept, so each grain stays unique);
   Shopify and Klaviyo stay at 1x. The default K is the smallest giving >= 10M ad rows
   (rows of raw.meta_ads_insights + meta_ads_insights_region + google_ads_campaign_stats +
   google_ads_geo_stats).
2. At both scales, timed in the same run and interleaved (best of `--repeats`):
   `dbt build --full-refresh` with its data tests; the same without tests and seeds
   (models only); and the SQL of `dbt compile --vars '{offline_compile: full}'` executed
   directly with the duckdb package, model by model in dependency order
   (`create or replace view|table`, into the relations dbt uses). Ad rows per second for
   each, and the dbt overhead ratio (models-only dbt build / direct SQL).
3. On the Kx warehouse, a one-new-day incremental run of every incremental model (the
   three marts and the intermediate tables they read: spans, latest orders, Klaviyo
   message days) (`dbt build --select config.materialized:incremental --vars
   '{min_date: D, max_date: D+1}'`, tests included, D = the last landed day) with all raw
   history, and on a copy whose raw fact tables keep only `--history-days` before D.
   Same built tables in both, so only the raw history differs; per-model times come from
   `run_results.json`.

Raw tables the project declares but the sandbox lacks (other than public_holidays) are
left out with their downstream nodes (`--exclude source:raw.<table>+`), and said so.
dbt writes its target and logs to the temporary folder (the project's own
`dbt_project/target` is untouched). Progress goes to stderr, the markdown to stdout.

    .venv/bin/python benchmarks/dbt_build.py [--scale K] [--repeats 3] [--history-days 30]
    CFAP_HOME=/path/to/.cfap .venv/bin/python benchmarks/dbt_build.py   # another sandbox
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from graphlib import TopologicalSorter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb

from cfap_orchestration.public_holidays import public_holidays
from cfap_orchestration.settings import load_settings
from cfap_orchestration.warehouse import DuckDBWarehouse

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
# The dbt installed beside this interpreter, whether or not the venv is on PATH.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))

AD_TABLES = (
    "meta_ads_insights",
    "meta_ads_insights_region",
    "google_ads_campaign_stats",
    "google_ads_geo_stats",
)
# Raw tables whose rows are history (facts by day); the short-history copy truncates these.
HISTORY_TABLES = (
    *AD_TABLES,
    "klaviyo_events",
    "klaviyo_campaigns",
    "klaviyo_holdout_profiles",
    "shopify_orders",
)
# The one-new-day run: every incremental model, marts and the intermediate tables they read.
INCREMENTAL_SELECTOR = "config.materialized:incremental"
TARGET_AD_ROWS = 10_000_000
HOLIDAY_COUNTRIES = ("US", "DE", "FR", "NL")
HOLIDAY_YEARS = range(2024, 2031)
MATERIALIZED_AS = {"view": "view", "table": "table", "incremental": "table"}

STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# --- dbt ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    resource_type: str
    name: str
    status: str
    seconds: float


@dataclass(frozen=True)
class DbtRun:
    wall: float
    nodes: tuple[NodeResult, ...]

    def seconds(self, resource_type: str) -> float:
        return sum(n.seconds for n in self.nodes if n.resource_type == resource_type)

    def model_seconds(self, name: str) -> float:
        return sum(n.seconds for n in self.nodes if n.resource_type == "model" and n.name == name)

    def model_names(self) -> list[str]:
        """The models this run built, in the order dbt ran them."""
        return [n.name for n in self.nodes if n.resource_type == "model"]

    def failed_tests(self) -> list[str]:
        return [n.name for n in self.nodes if n.resource_type == "test" and n.status != "pass"]


@dataclass(frozen=True)
class DbtContext:
    """Where one warehouse's dbt invocations point: CFAP_HOME, target and log folders."""

    home: Path
    target: Path
    logs: Path
    exclude: tuple[str, ...]

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"


def dbt_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CFAP_HOME=str(home),
        CFAP_DBT_TARGET="local",
        DBT_SEND_ANONYMOUS_USAGE_STATS="False",
        DO_NOT_TRACK="1",
    )
    return env


def run_dbt(ctx: DbtContext, args: Sequence[str], *, target: Path | None = None) -> DbtRun:
    """One dbt invocation, timed end to end, with its run_results.json (if it wrote one)."""
    target_path = target or ctx.target
    results_file = target_path / "run_results.json"
    results_file.unlink(missing_ok=True)
    command = [
        DBT_EXECUTABLE,
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target_path),
        "--log-path",
        str(ctx.logs),
    ]
    if ctx.exclude and args[0] in ("build", "compile"):
        if "--exclude" in args:
            position = command.index("--exclude") + 1
            command[position:position] = list(ctx.exclude)
        else:
            command.extend(["--exclude", *ctx.exclude])
    ctx.logs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env=dbt_env(ctx.home),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    with (ctx.logs / "stdout.log").open("a") as log:
        log.write(f"$ {' '.join(command)}\n{completed.stdout}{completed.stderr}\n")
    nodes: tuple[NodeResult, ...] = ()
    if results_file.exists():
        nodes = tuple(
            NodeResult(
                unique_id=r["unique_id"],
                resource_type=r["unique_id"].split(".")[0],
                name=r["unique_id"].split(".")[2],
                status=str(r["status"]),
                seconds=float(r["execution_time"]),
            )
            for r in json.loads(results_file.read_text())["results"]
        )
    broken = [n.unique_id for n in nodes if n.resource_type != "test" and n.status != "success"]
    if broken or (completed.returncode != 0 and not nodes):
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-30:])
        raise RuntimeError(f"dbt {' '.join(args)} failed ({', '.join(broken)}):\n{tail}")
    return DbtRun(wall=wall, nodes=nodes)


def load_manifest(target: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((target / "manifest.json").read_text())
    return manifest


def missing_sources(manifest: dict[str, Any], warehouse: Path) -> list[dict[str, Any]]:
    """Sources the project declares whose table the warehouse copy does not have."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        present = set(
            con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        )
    finally:
        con.close()
    return [
        s
        for s in manifest["sources"].values()
        if (s["schema"], s.get("identifier") or s["name"]) not in present
    ]


def descendants(manifest: dict[str, Any], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        for child in manifest["child_map"].get(node, []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


# --- direct DuckDB --------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledModel:
    kind: str  # view | table
    relation: str
    sql: str

    @property
    def statement(self) -> str:
        return f"create or replace {self.kind} {self.relation} as (\n{self.sql}\n)"


def compiled_models(manifest: dict[str, Any], skip: set[str]) -> list[CompiledModel]:
    """Each compiled model, in dependency order."""
    models = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and uid not in skip
    }
    graph = {
        uid: [d for d in node["depends_on"]["nodes"] if d in models] for uid, node in models.items()
    }
    compiled = []
    for uid in TopologicalSorter(graph).static_order():
        node = models[uid]
        materialized = node["config"]["materialized"]
        if materialized == "ephemeral":  # inlined into its dependents' compiled SQL
            continue
        if materialized not in MATERIALIZED_AS:
            raise ValueError(f"{uid}: no direct equivalent for materialized={materialized!r}")
        if not node.get("compiled_code"):
            raise ValueError(f"{uid}: not compiled")
        compiled.append(
            CompiledModel(
                MATERIALIZED_AS[materialized], node["relation_name"], node["compiled_code"]
            )
        )
    return compiled


def run_direct(warehouse: Path, models: Sequence[CompiledModel]) -> float:
    con = duckdb.connect(str(warehouse))
    try:
        started = time.perf_counter()
        for model in models:
            con.execute(model.statement)
        return time.perf_counter() - started
    finally:
        con.close()


def table_rows(warehouse: Path, models: Sequence[CompiledModel]) -> dict[str, int]:
    """Rows of every table model: the direct run must build what dbt built."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        counts = {}
        for model in models:
            if model.kind == "table":
                row = con.execute(f"select count(*) from {model.relation}").fetchone()
                counts[model.relation] = int(row[0]) if row else -1
        return counts
    finally:
        con.close()


# --- warehouse copies -----------------------------------------------------------------


def copy_warehouse(source: Path, home: Path) -> Path:
    home.mkdir(parents=True)
    destination = home / "warehouse.duckdb"
    shutil.copyfile(source, destination)
    return destination


def ensure_public_holidays(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        exists = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'raw' and table_name = 'public_holidays'"
        ).fetchone()
    finally:
        con.close()
    if not exists or not exists[0]:
        frame = public_holidays(list(HOLIDAY_COUNTRIES), HOLIDAY_YEARS)
        DuckDBWarehouse(warehouse).replace_table("raw", "public_holidays", frame)


def ad_row_count(warehouse: Path) -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        union = " union all ".join(f"select count(*) as n from raw.{t}" for t in AD_TABLES)
        row = con.execute(f"select sum(n) from ({union})").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def replicate_ads(warehouse: Path, factor: int) -> None:
    """Each raw ad table `factor` times; replica 0 keeps the original campaign ids."""
    con = duckdb.connect(str(warehouse))
    try:
        for table in AD_TABLES:
            con.execute(
                f"""
                create or replace table raw.{table} as
                select s.* replace (
                    case when r.i = 0 then s.campaign_id else s.campaign_id || '-r' || r.i end
                        as campaign_id
                )
                from raw.{table} as s
                cross join range({factor}) as r(i)
                order by s.partition_date, r.i
                """
            )
        con.execute("checkpoint")
    finally:
        con.close()


def last_ad_day(warehouse: Path) -> date:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        union = " union all ".join(
            f"select max(partition_date) as d from raw.{t}" for t in AD_TABLES
        )
        row = con.execute(f"select max(d) from ({union})").fetchone()
    finally:
        con.close()
    if not row or row[0] is None:
        raise RuntimeError("the raw ad tables are empty")
    day: date = row[0]
    return day


def truncate_history(warehouse: Path, cutoff: date) -> list[str]:
    """Keep only rows landed on or after `cutoff` in the raw fact tables."""
    con = duckdb.connect(str(warehouse))
    truncated = []
    try:
        present = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.columns "
                "where table_schema = 'raw' and column_name = 'partition_date'"
            ).fetchall()
        }
        for table in HISTORY_TABLES:
            if table in present:
                con.execute(
                    f"create or replace table raw.{table} as "
                    f"select * from raw.{table} where partition_date >= ?",
                    [cutoff],
                )
                truncated.append(table)
        con.execute("checkpoint")
    finally:
        con.close()
    return truncated


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# --- measurements ---------------------------------------------------------------------


@dataclass(frozen=True)
class FullRefresh:
    label: str
    ad_rows: int
    build: DbtRun  # dbt build --full-refresh, tests included
    models: DbtRun  # dbt build --full-refresh, no tests, no seeds
    direct: float  # the compiled models executed with the duckdb package
    failed_tests: tuple[str, ...]


@dataclass(frozen=True)
class Incremental:
    label: str
    ad_rows: int
    first_day: date
    run: DbtRun


def fastest(runs: Sequence[DbtRun]) -> DbtRun:
    return min(runs, key=lambda r: r.wall)


def measure_full_refresh(label: str, ctx: DbtContext, repeats: int) -> FullRefresh:
    ad_rows = ad_row_count(ctx.warehouse)
    progress(f"{label}: {ad_rows:,} ad rows; dbt parse")
    run_dbt(ctx, ["parse"])  # untimed: the timed runs then start from a warm partial parse
    builds: list[DbtRun] = []
    models: list[DbtRun] = []
    directs: list[float] = []
    compiled: list[CompiledModel] = []
    failed: set[str] = set()
    for attempt in range(1, repeats + 1):
        build = run_dbt(ctx, ["build", "--full-refresh"])
        builds.append(build)
        failed.update(build.failed_tests())
        progress(
            f"{label} #{attempt}: dbt build --full-refresh (tests included) {build.wall:.2f} s"
        )
        if not compiled:
            compile_target = ctx.target.with_name(ctx.target.name + "-compile")
            compile_run = run_dbt(
                ctx,
                ["compile", "--vars", json.dumps({"offline_compile": "full"})],
                target=compile_target,
            )
            manifest = load_manifest(compile_target)
            skip = descendants(manifest, (n for n in manifest["sources"] if _excluded(n, ctx)))
            compiled = compiled_models(manifest, skip)
            progress(f"{label}: dbt compile {compile_run.wall:.2f} s, {len(compiled)} models")
        only_models = run_dbt(
            ctx,
            ["build", "--full-refresh", "--exclude", "resource_type:test", "resource_type:seed"],
        )
        models.append(only_models)
        progress(
            f"{label} #{attempt}: dbt build --full-refresh, models only {only_models.wall:.2f} s"
        )
        built_by_dbt = table_rows(ctx.warehouse, compiled)
        direct = run_direct(ctx.warehouse, compiled)
        if table_rows(ctx.warehouse, compiled) != built_by_dbt:
            raise RuntimeError(f"{label}: the direct run built other row counts than dbt")
        directs.append(direct)
        progress(f"{label} #{attempt}: compiled SQL directly in DuckDB {direct:.2f} s")
    return FullRefresh(
        label=label,
        ad_rows=ad_rows,
        build=fastest(builds),
        models=fastest(models),
        direct=min(directs),
        failed_tests=tuple(sorted(failed)),
    )


def _excluded(source_id: str, ctx: DbtContext) -> bool:
    # source.<project>.<source_name>.<table> -> selector source:<source_name>.<table>+
    _, _, source_name, table = source_id.split(".", 3)
    return f"source:{source_name}.{table}+" in ctx.exclude


def incremental_args(day: date) -> list[str]:
    window = {"min_date": day.isoformat(), "max_date": (day + timedelta(days=1)).isoformat()}
    return ["build", "--select", INCREMENTAL_SELECTOR, "--vars", json.dumps(window)]


def measure_incremental(
    contexts: Sequence[tuple[str, DbtContext, date]], day: date, repeats: int
) -> list[Incremental]:
    args = incremental_args(day)
    runs: dict[str, list[DbtRun]] = {label: [] for label, _, _ in contexts}
    for _, ctx, _ in contexts:
        # Same vars as the timed runs, so each one starts from a warm partial parse.
        run_dbt(ctx, ["parse", "--vars", args[-1]])
    for attempt in range(1, repeats + 1):
        for label, ctx, _ in contexts:
            run = run_dbt(ctx, args)
            runs[label].append(run)
            progress(f"incremental {day} #{attempt}, {label}: {run.wall:.2f} s")
    return [
        Incremental(
            label=label,
            ad_rows=ad_row_count(ctx.warehouse),
            first_day=first_day,
            run=fastest(runs[label]),
        )
        for label, ctx, first_day in contexts
    ]


# --- report ---------------------------------------------------------------------------


def seconds(value: float) -> str:
    return f"{value:.2f}"


def per_second(rows: int, value: float) -> str:
    return f"{rows / value:,.0f}"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator > 0 else "n/a"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def report(
    scale: int,
    full: Sequence[FullRefresh],
    incremental: Sequence[Incremental],
    day: date,
    history_days: int,
    excluded: Sequence[str],
    left_out: Sequence[str],
    peak_bytes: int,
    repeats: int,
) -> str:
    out = [
        f"## dbt build on DuckDB: {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, "
        f"dbt-core {version('dbt-core')}, dbt-duckdb {version('dbt-duckdb')}, "
        f"duckdb {duckdb.__version__}",
        "",
        f"`.venv/bin/python benchmarks/dbt_build.py --scale {scale} --repeats {repeats} "
        f"--history-days {history_days}`: best of {repeats} per figure, measured interleaved "
        "in one run. Ad rows = raw Meta insights (campaign + region) + Google Ads (campaign + "
        f"geo). At {scale}x the four raw ad tables are replicated {scale} times in SQL "
        "(campaign_id suffixed per replica); Shopify and Klaviyo stay at 1x.",
    ]
    if excluded:
        out.append(
            "Left out (raw table missing from the sandbox warehouse): "
            + ", ".join(f"`{e}`" for e in excluded)
            + (f" (models {', '.join(left_out)})" if left_out else "")
            + "."
        )
    out += [
        "",
        "### Full refresh: dbt against its own compiled SQL run directly in DuckDB",
        "",
    ]
    rows = []
    for f in full:
        rows.append(
            [
                f.label,
                f"{f.ad_rows:,}",
                seconds(f.build.wall),
                seconds(f.models.wall),
                seconds(f.models.seconds("model")),
                seconds(f.direct),
                per_second(f.ad_rows, f.build.wall),
                per_second(f.ad_rows, f.models.wall),
                per_second(f.ad_rows, f.direct),
                ratio(f.models.wall, f.direct),
                ratio(f.models.seconds("model"), f.direct),
            ]
        )
    out.append(
        table(
            [
                "scale",
                "ad rows",
                "dbt build + tests (s)",
                "dbt build, models only (s)",
                "of which in models (s)",
                "direct DuckDB (s)",
                "dbt + tests rows/s",
                "dbt models rows/s",
                "direct rows/s",
                "dbt overhead (wall / direct)",
                "in-model overhead (model time / direct)",
            ],
            rows,
        )
    )
    small, large = full[0], full[-1]
    out += [
        "",
        f"- With tests the build takes {ratio(large.build.wall, large.models.wall)} the "
        f"models-only time at {large.label} ({seconds(large.build.seconds('test'))} s in "
        f"{sum(1 for n in large.build.nodes if n.resource_type == 'test')} tests); "
        f"{len(set(large.failed_tests) | set(small.failed_tests))} test(s) did not pass"
        + (
            f": {', '.join(sorted(set(large.failed_tests) | set(small.failed_tests)))}."
            if large.failed_tests or small.failed_tests
            else "."
        ),
        f"- dbt's fixed cost (wall minus time inside models, models-only build): "
        f"{seconds(small.models.wall - small.models.seconds('model'))} s at {small.label}, "
        f"{seconds(large.models.wall - large.models.seconds('model'))} s at {large.label}.",
        f"- {large.label} over {small.label}: {ratio(large.ad_rows, small.ad_rows)} the ad rows, "
        f"{ratio(large.models.wall, small.models.wall)} the dbt time, "
        f"{ratio(large.direct, small.direct)} the direct time.",
    ]

    long_run, short_run = incremental
    models = long_run.run.model_names()
    out += [
        "",
        f"### One new day ({day}) incremental at {scale}x, long versus short raw history",
        "",
        f"`dbt build --select {INCREMENTAL_SELECTOR} --vars "
        f"'{{min_date: {day}, max_date: {day + timedelta(days=1)}}}'` (incremental, tests "
        f"included): the {len(models)} incremental models, the marts and the intermediate "
        "tables they read. The short copy keeps raw facts from "
        f"{short_run.first_day} (the {history_days} days before {day}); built tables identical.",
        "",
    ]
    header = ["raw history", "ad rows", "dbt wall (s)", "models (s)", "tests (s)"]
    rows = []
    for inc in incremental:
        days = (day - inc.first_day).days + 1
        rows.append(
            [
                f"{inc.first_day} .. {day} ({days} days)",
                f"{inc.ad_rows:,}",
                seconds(inc.run.wall),
                seconds(inc.run.seconds("model")),
                seconds(inc.run.seconds("test")),
            ]
        )
    rows.append(
        [
            "long / short",
            ratio(long_run.ad_rows, short_run.ad_rows),
            ratio(long_run.run.wall, short_run.run.wall),
            ratio(long_run.run.seconds("model"), short_run.run.seconds("model")),
            ratio(long_run.run.seconds("test"), short_run.run.seconds("test")),
        ]
    )
    out.append(table(header, rows))
    out += ["", "Per model, in run order:", ""]
    out.append(
        table(
            ["model", "long history (s)", "short history (s)", "long / short"],
            [
                [
                    m,
                    seconds(long_run.run.model_seconds(m)),
                    seconds(short_run.run.model_seconds(m)),
                    ratio(long_run.run.model_seconds(m), short_run.run.model_seconds(m)),
                ]
                for m in models
            ],
        )
    )

    full_models = sum(large.models.model_seconds(m) for m in models)
    extra = {m: long_run.run.model_seconds(m) - short_run.run.model_seconds(m) for m in models}
    dominant = max(extra, key=lambda m: extra[m])
    model_ratio = long_run.run.seconds("model") / max(short_run.run.seconds("model"), 1e-9)
    out += [
        "",
        f"- One day with long history costs "
        f"{ratio(long_run.run.seconds('model'), full_models)} the full refresh of the same "
        f"{len(models)} models ({seconds(full_models)} s at {large.label}, models-only build).",
    ]
    if model_ratio > 1.5:
        out.append(
            f"- History-dependent: the models take {model_ratio:.1f}x as long with "
            f"{ratio(long_run.ad_rows, short_run.ad_rows)} the raw rows. {dominant} dominates "
            f"({seconds(long_run.run.model_seconds(dominant))} s long vs "
            f"{seconds(short_run.run.model_seconds(dominant))} s short); per-model extra "
            "seconds with long history: " + ", ".join(f"{m} {extra[m]:+.2f}" for m in models) + "."
        )
    else:
        out.append(
            f"- Cost grows with new data, not history: {model_ratio:.2f}x model time for "
            f"{ratio(long_run.ad_rows, short_run.ad_rows)} the raw rows."
        )
    out += [
        "",
        f"Work folder peak {peak_bytes / 1e9:.2f} GB; total run "
        f"{(time.perf_counter() - STARTED) / 60:.1f} min.",
    ]
    return "\n".join(out)


# --- main -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        help="replicas of the raw ad tables (default: the smallest giving >= 10M ad rows)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of N per figure")
    parser.add_argument(
        "--history-days", type=int, default=30, help="raw history kept by the short copy"
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=load_settings().warehouse_path,
        help="sandbox warehouse to copy (default $CFAP_HOME/warehouse.duckdb); read only",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    source: Path = args.source.expanduser().resolve()
    if not source.exists():
        parser.error(f"{source} does not exist: run `make demo` or pass --source")
    if args.repeats < 1 or args.history_days < 1 or (args.scale is not None and args.scale < 1):
        parser.error("--scale, --repeats and --history-days must be positive")

    work = Path(tempfile.mkdtemp(prefix="cfap-dbt-bench-", dir=args.work_dir))
    progress(f"work folder {work}, source {source}")
    peak = 0

    def track() -> None:
        nonlocal peak
        peak = max(peak, folder_bytes(work))

    try:
        # 1x: the sandbox as it is (plus public holidays when missing).
        base = copy_warehouse(source, work / "x1")
        ensure_public_holidays(base)
        base_rows = ad_row_count(base)
        scale = args.scale or max(2, math.ceil(TARGET_AD_ROWS / max(base_rows, 1)))

        # Kx: the same raw tables, ad tables replicated (copied before 1x is built on).
        big = copy_warehouse(base, work / f"x{scale}")
        progress(f"replicating {base_rows:,} ad rows {scale} times")
        replicate_ads(big, scale)
        track()

        # Sources the project declares but the copies lack: leave them and their descendants.
        probe = DbtContext(work / "x1", work / "probe-target", work / "logs", ())
        run_dbt(probe, ["parse"])
        manifest = load_manifest(probe.target)
        # Only sources something reads locally (a prod-only source has no children here).
        missing = [
            s for s in missing_sources(manifest, base) if manifest["child_map"].get(s["unique_id"])
        ]
        excluded = tuple(f"source:{s['source_name']}.{s['name']}+" for s in missing)
        left_out = sorted(
            manifest["nodes"][uid]["name"]
            for uid in descendants(manifest, (s["unique_id"] for s in missing))
            if uid in manifest["nodes"] and manifest["nodes"][uid]["resource_type"] == "model"
        )
        if excluded:
            progress(f"excluding (missing raw tables): {', '.join(excluded)}: {left_out}")

        full = []
        for label, home in (("1x", work / "x1"), (f"{scale}x", work / f"x{scale}")):
            ctx = DbtContext(home, work / f"target-{label}", work / "logs", excluded)
            full.append(measure_full_refresh(label, ctx, args.repeats))
            track()

        # Incremental: the built Kx warehouse (long history) and a copy with short history.
        day = last_ad_day(big)
        first_day = day - timedelta(days=args.history_days)
        long_ctx = DbtContext(work / f"x{scale}", work / "target-long", work / "logs", excluded)
        short_home = work / f"x{scale}-short"
        copy_warehouse(big, short_home)
        truncated = truncate_history(short_home / "warehouse.duckdb", first_day)
        progress(f"short history copy: {', '.join(truncated)} from {first_day}")
        short_ctx = DbtContext(short_home, work / "target-short", work / "logs", excluded)
        track()
        con = duckdb.connect(str(big), read_only=True)
        try:
            row = con.execute("select min(partition_date) from raw.meta_ads_insights").fetchone()
        finally:
            con.close()
        long_first: date = row[0] if row and row[0] else first_day
        incremental = measure_incremental(
            [("long", long_ctx, long_first), ("short", short_ctx, first_day)],
            day,
            args.repeats,
        )
        track()
        print(
            report(
                scale,
                full,
                incremental,
                day,
                args.history_days,
                excluded,
                left_out,
                peak,
                args.repeats,
            )
        )
    finally:
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
