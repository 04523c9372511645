"""Pure helpers behind the dbt assets: CLI arguments, partition vars, manifest freshness."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

from cfap_orchestration.defs.dbt.assets import DbtBuildConfig, dbt_build_args, partition_vars
from cfap_orchestration.defs.dbt.project import manifest_is_stale


def test_partition_window_becomes_half_open_date_vars() -> None:
    assert partition_vars(datetime(2025, 1, 1), datetime(2025, 2, 1)) == {
        "min_date": "2025-01-01",
        "max_date": "2025-02-01",
    }


def test_lookback_widens_the_window_back_for_restated_days() -> None:
    assert partition_vars(datetime(2025, 3, 1), datetime(2025, 3, 2), lookback_days=28) == {
        "min_date": "2025-02-01",
        "max_date": "2025-03-02",
    }
    args = dbt_build_args(
        DbtBuildConfig(lookback_days=2), (datetime(2025, 1, 3), datetime(2025, 1, 4))
    )
    assert json.loads(args[args.index("--vars") + 1])["min_date"] == "2025-01-01"


def test_build_args_for_partitioned_unpartitioned_and_full_refresh_runs() -> None:
    window = (datetime(2025, 1, 1), datetime(2025, 1, 3))
    assert dbt_build_args(DbtBuildConfig(), None) == ["build", "--indirect-selection", "cautious"]
    args = dbt_build_args(DbtBuildConfig(full_refresh=True), window)
    assert args[0] == "build" and "--full-refresh" in args
    assert json.loads(args[args.index("--vars") + 1]) == {
        "min_date": "2025-01-01",
        "max_date": "2025-01-03",
    }


def test_manifest_is_stale_when_missing_or_older_than_a_model(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "m.sql"
    model.write_text("select 1")
    (tmp_path / "dbt_project.yml").write_text("name: x")
    manifest = tmp_path / "target" / "manifest.json"
    assert manifest_is_stale(tmp_path, manifest)
    manifest.parent.mkdir()
    manifest.write_text("{}")
    assert not manifest_is_stale(tmp_path, manifest)
    later = time.time() + 5
    os.utime(model, (later, later))
    assert manifest_is_stale(tmp_path, manifest)
