"""Environment and paths. Everything configurable comes from `CFAP_*` environment variables.

| variable | default | meaning |
|---|---|---|
| CFAP_ENV | local | `local` (DuckDB + sandbox APIs) or `prod` (BigQuery + real APIs) |
| CFAP_HOME | .cfap | local state: warehouse file, landing folder, Dagster instance |
| CFAP_START_DATE | 2024-01-01 | first daily partition of every ingest asset |
| CFAP_REPORTING_CURRENCY | USD | currency every spend and revenue figure is converted to |
| CFAP_SANDBOX_SEED | 7 | seed of the simulated brand |
| CFAP_SANDBOX_CUSTOMERS | 10000 | size of the simulated brand (orders and budgets scale with it) |
| CFAP_SANDBOX_GEOS | 12 | regions in the simulated brand |
| CFAP_SANDBOX_CAMPAIGNS | 4 | campaigns per ad account in the simulated brand |
| CFAP_SANDBOX_AS_OF | today 00:00 UTC | "now" for the fake APIs (ISO datetime); pinned to the
  start of the day so re-running a partition on the same day reads the same data |
| CFAP_ARTIFACTS_URI | `$CFAP_HOME` | where model posteriors (`models/`) and report exports
  (`reports/`) are written; required in prod, a `gs://` bucket URI |

Production reads more variables, for the warehouse, the landing bucket and the platform
credentials: see `cfap_orchestration.resources.prod_resources` and deploy/README.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Literal

from upath import UPath

from cfap_orchestration.sandbox.world import WorldConfig

Environment = Literal["local", "prod"]
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    env: Environment
    home: Path
    start_date: date
    reporting_currency: str
    sandbox: WorldConfig
    sandbox_as_of: datetime
    artifacts_uri: str

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def models_dir(self) -> UPath:
        """Saved model artifacts (the media-mix model's posterior), one folder per fit."""
        return UPath(self.artifacts_uri) / "models"

    @property
    def reports_dir(self) -> UPath:
        """Exported reports: the results workbook, its CSVs and the estimates report."""
        return UPath(self.artifacts_uri) / "reports"

    @property
    def compile_cache_dir(self) -> Path:
        """JAX's compilation cache: always on local disk (it is a cache, not an artifact)."""
        return self.home / "models" / "jax_cache"

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def _int_env(name: str, default: int) -> int:
    raw = os.getenv(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _as_of_env() -> datetime:
    raw = os.getenv("CFAP_SANDBOX_AS_OF")
    if not raw:
        return datetime.combine(datetime.now(UTC).date(), time(0, 0), UTC)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"CFAP_SANDBOX_AS_OF must be an ISO datetime, got {raw!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _artifacts_uri(env: str, home: Path) -> str:
    raw = os.getenv("CFAP_ARTIFACTS_URI", "")
    if env == "local":
        return raw or str(home)
    if not raw.startswith("gs://") or len(raw) <= len("gs://"):
        raise ValueError(
            "CFAP_ARTIFACTS_URI must be the artifacts bucket as gs://<bucket>[/<prefix>] "
            f"when CFAP_ENV=prod, got {raw!r} (terraform output artifacts_uri)"
        )
    return raw.rstrip("/")


def load_settings() -> Settings:
    """Read the environment (uncached: tests call this after changing variables)."""
    env = os.getenv("CFAP_ENV", "local") or "local"
    if env not in ("local", "prod"):
        raise ValueError(f"CFAP_ENV must be 'local' or 'prod', got {env!r}")
    raw_start = os.getenv("CFAP_START_DATE", "2024-01-01")
    try:
        start = date.fromisoformat(raw_start)
    except ValueError:
        raise ValueError(f"CFAP_START_DATE must be YYYY-MM-DD, got {raw_start!r}") from None
    home = Path(os.getenv("CFAP_HOME", str(PROJECT_ROOT / ".cfap"))).expanduser().resolve()
    return Settings(
        env=env,  # type: ignore[arg-type]
        home=home,
        start_date=start,
        reporting_currency=os.getenv("CFAP_REPORTING_CURRENCY", "USD"),
        sandbox=WorldConfig(
            seed=_int_env("CFAP_SANDBOX_SEED", 7),
            n_customers=_int_env("CFAP_SANDBOX_CUSTOMERS", 10_000),
            n_geos=_int_env("CFAP_SANDBOX_GEOS", 12),
            campaigns_per_account=_int_env("CFAP_SANDBOX_CAMPAIGNS", 4),
        ),
        sandbox_as_of=_as_of_env(),
        artifacts_uri=_artifacts_uri(env, home),
    )


@cache
def get_settings() -> Settings:
    return load_settings()
