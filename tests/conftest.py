"""Shared fixtures: an isolated CFAP_HOME with a small, pinned sandbox world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests_support import SANDBOX_ENV

from cfap_orchestration.settings import get_settings


@pytest.fixture
def cfap_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "cfap"
    monkeypatch.setenv("CFAP_HOME", str(home))
    for key, value in SANDBOX_ENV.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
