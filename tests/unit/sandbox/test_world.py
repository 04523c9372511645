"""The sandbox world: deterministic, defined for any day, and faithful to its own truth."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cfap_orchestration.sandbox.world import (
    CHANNEL_RESPONSES,
    SandboxWorld,
    WorldConfig,
    daterange,
)

DAY = date(2025, 3, 4)  # a Tuesday: an email campaign goes out


def _orders_frame(world: SandboxWorld, day: date) -> pd.DataFrame:
    return pd.DataFrame(
        [{k: v for k, v in o.items() if k != "items"} for o in world.orders_created(day)]
    )


def test_same_seed_same_world_in_any_order() -> None:
    a, b = SandboxWorld(WorldConfig(seed=11)), SandboxWorld(WorldConfig(seed=11))
    for d in daterange(DAY - timedelta(days=5), DAY):  # warm a's caches out of order
        a.orders_created(d)
    pd.testing.assert_frame_equal(_orders_frame(a, DAY), _orders_frame(b, DAY))
    pd.testing.assert_frame_equal(a.ad_report(DAY), b.ad_report(DAY))
    assert [s.campaign_id for s in a.message_sends(DAY)] == [
        s.campaign_id for s in b.message_sends(DAY)
    ]
    np.testing.assert_array_equal(a.message_sends(DAY)[0].holdout, b.message_sends(DAY)[0].holdout)


def test_different_seed_different_world() -> None:
    a, b = SandboxWorld(WorldConfig(seed=1)), SandboxWorld(WorldConfig(seed=2))
    assert not a.ad_report(DAY)["spend"].equals(b.ad_report(DAY)["spend"])
    assert len(a.orders_created(DAY)) != len(b.orders_created(DAY)) or not _orders_frame(
        a, DAY
    ).equals(_orders_frame(b, DAY))


def test_defined_for_yesterday_and_far_dates() -> None:
    world = SandboxWorld()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    for day in (yesterday, date(2019, 6, 1), date(2031, 2, 28)):
        assert len(world.orders_created(day)) > 50
        assert not world.ad_report(day).empty


def test_two_currencies_and_two_time_zones() -> None:
    accounts = SandboxWorld().ad_accounts
    assert set(accounts["currency"]) == {"USD", "EUR"}
    assert accounts["timezone"].nunique() >= 2


def test_true_roas_matches_the_response_model() -> None:
    truth = SandboxWorld().truth(date(2025, 2, 1), date(2025, 4, 30))
    summary = truth["channel_summary"].set_index("channel")
    for channel, response in CHANNEL_RESPONSES.items():
        # Typical spend sits at the saturation midpoint, so ROAS lands near its target.
        assert summary.loc[channel, "roas"] == pytest.approx(response.target_roas, rel=0.25)
    assert summary.loc["email", "incremental_revenue"] > 0


def test_orders_follow_expected_revenue() -> None:
    world = SandboxWorld()
    start, end = date(2025, 5, 1), date(2025, 5, 28)
    realized = sum(o["total"] for d in daterange(start, end) for o in world.orders_created(d))
    truth = world.truth(start, end)["channel_daily"]
    expected = truth["incremental_revenue"].sum()  # baseline + every channel
    assert realized == pytest.approx(expected, rel=0.05)


def test_geo_holdout_switches_ads_off_in_holdout_geos_only() -> None:
    world = SandboxWorld()
    exp = world.experiments_for_year(2025)[0]
    assert exp.platform == "meta"
    report = world.ad_report(exp.start + timedelta(days=3))
    meta = report[report["platform"] == "meta"]
    assert not set(exp.holdout_geos) & set(meta["geo_id"])
    assert set(meta["geo_id"]) - set(exp.holdout_geos)
    truth = world.truth(exp.start, exp.end)["geo_experiments"]
    row = truth.set_index("experiment_id").loc[exp.experiment_id]
    assert row["true_incremental_revenue"] > 0
    assert 0 < row["true_relative_lift"] < 1


def test_email_holdouts_are_randomized_and_disjoint() -> None:
    send = next(s for s in SandboxWorld().message_sends(DAY) if s.kind == "campaign")
    assert not set(send.treated) & set(send.holdout)
    share = len(send.holdout) / (len(send.holdout) + len(send.treated))
    assert share == pytest.approx(0.10, abs=0.03)


def test_platforms_over_report_conversions() -> None:
    world = SandboxWorld()
    start, end = date(2025, 3, 1), date(2025, 3, 31)
    claimed = sum(
        world.ad_report(d).query("platform == 'meta'")["conversions"].sum()
        for d in daterange(start, end)
    )
    daily = world.truth(start, end)["channel_daily"]
    true_orders = daily.loc[daily["channel"] == "paid_social", "incremental_orders"].sum()
    assert claimed > 1.5 * true_orders


def test_size_knobs_scale_volume() -> None:
    small = SandboxWorld(WorldConfig(n_customers=5_000))
    large = SandboxWorld(WorldConfig(n_customers=50_000, n_geos=16, campaigns_per_account=8))
    assert len(large.orders_created(DAY)) > 8 * len(small.orders_created(DAY))
    assert len(large.ad_report(DAY)) > 2 * len(small.ad_report(DAY))


def test_invalid_size_is_refused() -> None:
    with pytest.raises(ValueError, match="n_geos"):
        WorldConfig(n_geos=1)


def test_journeys_are_deterministic_and_convert_at_the_modelled_rate() -> None:
    a, b = SandboxWorld(), SandboxWorld()
    pd.testing.assert_frame_equal(a.journeys(DAY), b.journeys(DAY))
    start, end = date(2025, 3, 1), date(2025, 3, 31)
    journeys = pd.concat([a.journeys(d) for d in daterange(start, end)])
    truth = a.journey_truth(start, end)
    expected = truth["expected_conversions"].iloc[0]
    assert journeys["converted"].sum() == pytest.approx(expected, rel=0.1)
    assert journeys["path"].map(len).min() >= 1


def test_journey_truth_shapley_shares_add_up_to_incremental_conversions() -> None:
    world = SandboxWorld()
    truth = world.journey_truth(DAY, DAY)
    n = len(world.journeys(DAY))
    baseline = n * 0.01  # JOURNEY_BASE_RATE: what converts with no channel at all
    incremental = truth["expected_conversions"].iloc[0] - baseline
    assert truth["shapley_conversions"].sum() == pytest.approx(incremental, rel=1e-9)
    assert (truth["removal_conversions"] > 0).all()
    # A channel's removal effect never exceeds its Shapley credit under a noisy-OR.
    assert (truth["removal_conversions"] <= truth["shapley_conversions"] + 1e-9).all()
