"""The dbt seeds the sandbox publishes match what the generator produces today."""

from __future__ import annotations

import csv

import pytest

from cfap_orchestration.sandbox.reference_data import SEEDS, SEEDS_DIR


@pytest.mark.parametrize("name", list(SEEDS))
def test_committed_seed_matches_the_generator(name: str) -> None:
    with (SEEDS_DIR / f"{name}.csv").open() as handle:
        committed = list(csv.DictReader(handle))
    generated = [{k: str(v) for k, v in row.items()} for row in SEEDS[name]()]
    assert committed == generated, (
        f"dbt_project/seeds/{name}.csv is out of date: "
        "run `.venv/bin/python -m cfap_orchestration.sandbox.reference_data`"
    )
