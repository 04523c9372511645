"""Data-quality checks on a raw extract, as pure functions over the rows just written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def duplicate_keys(frame: pd.DataFrame, primary_key: tuple[str, ...]) -> CheckOutcome:
    """No two rows share a primary key."""
    dupes = frame[frame.duplicated(list(primary_key), keep=False)]
    sample = dupes[list(primary_key)].head(5).astype(str).to_dict("records")
    return CheckOutcome(
        passed=dupes.empty,
        description=f"{len(dupes)} rows share a primary key ({', '.join(primary_key)})",
        metadata={"duplicate_rows": len(dupes), "sample": sample},
    )


def missing_required(frame: pd.DataFrame, required: tuple[str, ...]) -> CheckOutcome:
    """Required fields exist and are neither null nor empty strings."""
    absent = [c for c in required if c not in frame.columns]
    counts = {
        c: int((frame[c].isna() | (frame[c].astype(str).str.strip() == "")).sum())
        for c in required
        if c in frame.columns
    }
    bad = {c: n for c, n in counts.items() if n}
    return CheckOutcome(
        passed=not absent and not bad,
        description=f"absent columns: {absent or 'none'}; empty values: {bad or 'none'}",
        metadata={"absent_columns": absent, "empty_values": bad},
    )


def negative_amounts(frame: pd.DataFrame, columns: tuple[str, ...]) -> CheckOutcome:
    """Money columns (as the wire sends them, often strings) are numbers and never negative."""
    bad: dict[str, int] = {}
    unparseable: dict[str, int] = {}
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        unparseable[column] = int((values.isna() & frame[column].notna()).sum())
        bad[column] = int((values < 0).sum())
    negatives = {c: n for c, n in bad.items() if n}
    garbled = {c: n for c, n in unparseable.items() if n}
    return CheckOutcome(
        passed=not negatives and not garbled,
        description=f"negative: {negatives or 'none'}; not a number: {garbled or 'none'}",
        metadata={"negative_rows": negatives, "unparseable_rows": garbled},
    )
