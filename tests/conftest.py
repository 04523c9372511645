"""Shared fixtures: an isolated CFAP_HOME with a small, pinned sandbox world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cfap_orchestration.settings import get_settings

# A small brand and a fixed "now", so runs are fast and reproducible.
SANDBOX_ENV = {
    "CFAP_ENV": "local",
    "CFAP_SANDBOX_CUSTOMERS": "2000",
    "CFAP_SANDBOX_AS_OF": "2025-03-01T06:00:00+00:00",
    "CFAP_START_DATE": "2024-01-01",
}


@pytest.fixture
def cfap_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "cfap"
    monkeypatch.setenv("CFAP_HOME", str(home))
    for key, value in SANDBOX_ENV.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
