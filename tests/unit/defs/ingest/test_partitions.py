"""Partition window arithmetic."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from cfap_orchestration.defs.ingest.partitions import restatement_dates, window_dates


def test_window_dates_are_half_open() -> None:
    assert window_dates(datetime(2025, 1, 30), datetime(2025, 2, 2)) == [
        date(2025, 1, 30),
        date(2025, 1, 31),
        date(2025, 2, 1),
    ]


def test_restatement_extends_back_but_not_before_the_first_partition() -> None:
    days = [date(2025, 1, 10), date(2025, 1, 11)]
    assert restatement_dates(days, 0, date(2024, 1, 1)) == days
    assert restatement_dates(days, 3, date(2024, 1, 1))[0] == date(2025, 1, 7)
    assert restatement_dates(days, 30, date(2025, 1, 5))[0] == date(2025, 1, 5)
    with pytest.raises(ValueError, match="no partition dates"):
        restatement_dates([], 3, date(2024, 1, 1))
