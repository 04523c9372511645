"""Reports and posteriors are written whole: on local disk and on an object store alike."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from upath import UPath

from cfap_orchestration.artifacts import write_artifact


def _write(text: str) -> Callable[[Path], None]:
    def write(target: Path) -> None:
        assert isinstance(target, Path) and target.parent.exists()  # always a local file
        target.write_text(text)

    return write


def test_a_local_artifact_replaces_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "estimates.md"
    write_artifact(path, _write("one"))
    write_artifact(path, _write("two"))
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["estimates.md"]


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "estimates.md"
    write_artifact(path, _write("good"))

    def broken(target: Path) -> None:
        target.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_artifact(path, broken)
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["estimates.md"]


def test_an_object_store_artifact_is_uploaded_whole() -> None:
    path = UPath(f"memory://artifacts-{uuid.uuid4().hex}") / "reports" / "estimates.md"
    assert write_artifact(path, _write("from a local file")) == path
    assert path.read_text() == "from a local file"
