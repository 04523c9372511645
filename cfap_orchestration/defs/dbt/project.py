"""The dbt project, cached, with its manifest kept fresh without a manual step."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from cfap_orchestration.settings import PROJECT_ROOT, get_settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_SOURCE_DIRS = ("models", "macros", "seeds", "tests")
# The dbt installed beside this interpreter, whether or not the venv is on PATH.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))


def dbt_target() -> str:
    return "prod" if get_settings().env == "prod" else "local"


def manifest_is_stale(project_dir: Path, manifest: Path) -> bool:
    """True when the manifest is missing or older than any file dbt parses."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    files = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in DBT_SOURCE_DIRS:
        files.extend(p for p in (project_dir / folder).rglob("*") if p.is_file())
    return any(f.stat().st_mtime > built for f in files if f.exists())


def cfap_dbt_project() -> DbtProject:
    """The dbt project for this environment's target (local: DuckDB, prod: BigQuery)."""
    return dbt_project_for(dbt_target())


@cache
def dbt_project_for(target: str) -> DbtProject:
    settings = get_settings()
    # profiles.yml reads the warehouse location from the environment, like every dbt run.
    os.environ.setdefault("CFAP_HOME", str(settings.home))
    # One target folder per dbt target: a local parse never stands in for prod's manifest.
    project = DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target=target,
        target_path=Path("target") / target,
    )
    if manifest_is_stale(project.project_dir, project.manifest_path):
        # `dbt parse`: a few seconds, only after an edit (or on a fresh clone).
        dbt = DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE)
        dbt.cli(["--quiet", "parse"], target_path=project.target_path).wait()
    return project
