"""Writing files that people and later runs read: reports and model posteriors. No Dagster.

Locally they go under `$CFAP_HOME`; in production under the artifacts bucket
(`CFAP_ARTIFACTS_URI`, a `gs://` URI), through fsspec's `UPath`. Either way a reader sees
the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from upath import UPath

# A local file, or an object in the artifacts bucket.
ArtifactPath = Path | UPath


def write_artifact(path: ArtifactPath, write: Callable[[Path], None]) -> ArtifactPath:
    """Run `write` on a local temporary file, then move it to `path` in one step: a rename
    on local disk, one object upload on GCS (atomic per object)."""
    if not isinstance(path, Path):
        return _upload(path, write)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _upload(path: UPath, write: Callable[[Path], None]) -> UPath:
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / path.name
        write(local)
        path.write_bytes(local.read_bytes())
    return path
