"""Raw-table quality checks catch what they claim to catch."""

from __future__ import annotations

import pandas as pd

from cfap_orchestration.defs.ingest.checks import duplicate_keys, missing_required, negative_amounts

ROWS = pd.DataFrame(
    {"account_id": ["1", "1", "2"], "day": ["d1", "d2", "d1"], "spend": ["1.50", "0.00", "3"]}
)


def test_unique_keys_pass_and_duplicates_fail() -> None:
    assert duplicate_keys(ROWS, ("account_id", "day")).passed
    dup = pd.concat([ROWS, ROWS.iloc[[0]]])
    outcome = duplicate_keys(dup, ("account_id", "day"))
    assert not outcome.passed
    assert outcome.metadata["duplicate_rows"] == 2
    assert outcome.metadata["sample"][0] == {"account_id": "1", "day": "d1"}


def test_required_fields_catch_null_empty_and_absent() -> None:
    assert missing_required(ROWS, ("account_id", "spend")).passed
    holes = ROWS.assign(spend=["1", None, " "])
    outcome = missing_required(holes, ("spend", "campaign_id"))
    assert not outcome.passed
    assert outcome.metadata == {"absent_columns": ["campaign_id"], "empty_values": {"spend": 2}}


def test_negative_or_garbled_amounts_fail() -> None:
    assert negative_amounts(ROWS, ("spend",)).passed
    assert not negative_amounts(ROWS.assign(spend=["1", "-0.01", "2"]), ("spend",)).passed
    garbled = negative_amounts(ROWS.assign(spend=["1", "1,50", "2"]), ("spend",))
    assert not garbled.passed
    assert garbled.metadata["unparseable_rows"] == {"spend": 1}
