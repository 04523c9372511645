"""Shared fixtures: an isolated CFAP_HOME with a small, pinned sandbox world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster._core.storage.defs_state.base import set_defs_state_storage
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


@pytest.fixture(autouse=True)
def _no_leftover_dagster_state_storage() -> Iterator[None]:
    """Each test starts without a Dagster defs-state storage left current by an earlier one.

    Entering a DagsterInstance makes its storage current in a context variable; a module
    fixture's instance, once collected, would leave a dead reference there, and the next
    `Definitions.get_repository_def()` fails with "undefined DagsterInstance weakref".
    """
    with set_defs_state_storage(None):
        yield
