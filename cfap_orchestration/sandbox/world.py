"""A simulated direct-to-consumer brand whose causal structure is known.

Revenue per region and day is generated from an explicit model:

    expected revenue = baseline(trend x weekly x yearly x holidays)
                     + sum over paid channels of beta * logistic(lambda * adstock(spend))
                     + email/SMS uplift of the recipients of each send

and orders are drawn from it. Every random draw is keyed on (seed, stream, day),
so any single day can be generated on its own, in any order, with the same
result. Platforms report their own (inflated) conversions, which mature over an
attribution window, as the real ones do.

The truth of each channel's contribution, each geo experiment's lift and each
email holdout's lift is available from :meth:`SandboxWorld.truth`.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from cfap_orchestration.sandbox.catalog import (
    AD_ACCOUNTS,
    EU_REGIONS,
    GOOGLE_CAMPAIGN_THEMES,
    META_CAMPAIGN_THEMES,
    PRODUCTS,
    US_REGIONS,
    Region,
)

PAID_CHANNELS: tuple[str, ...] = ("paid_social", "paid_search")
PLATFORM_CHANNEL = {"meta": "paid_social", "google_ads": "paid_search"}
ITEM_COUNT_PROBS = np.array([0.55, 0.30, 0.15])
DISCOUNT_RATE, DISCOUNT_SHARE = 0.10, 0.20
REFUND_RATE, CANCEL_RATE = 0.06, 0.01
# Expected share of an order's total left in net revenue once cancellations and refunds
# (both of the whole order) are taken out: what the marts' net revenue measures.
NET_REVENUE_SHARE = 1 - REFUND_RATE - CANCEL_RATE
# Baseline demand by weekday, Monday first.
WEEKLY_PATTERN = (0.97, 0.98, 1.0, 1.0, 1.03, 1.06, 0.96)
SHOPIFY_ORDER_ID_BASE = 5_500_000_000_000

# Journey model: channel -> (probability a journey touches it, its conversion lift).
JOURNEY_MODEL: dict[str, tuple[float, float]] = {
    "paid_social": (0.40, 0.030),
    "paid_search": (0.30, 0.050),
    "email": (0.25, 0.020),
    "sms": (0.08, 0.030),
    "organic_search": (0.35, 0.020),
    "direct": (0.30, 0.040),
}
JOURNEY_CHANNELS: tuple[str, ...] = tuple(JOURNEY_MODEL)
JOURNEY_BASE_RATE = 0.01
JOURNEYS_PER_CUSTOMER_DAY = 0.03


@dataclass(frozen=True)
class ChannelResponse:
    """How one paid channel moves revenue: geometric adstock, then logistic saturation.

    `target_roas` is the channel's true ROAS at its typical daily spend; the
    saturation scale is set so that typical spend sits at lambda * x = 1.
    `over_report` is how much the platform inflates its own conversions.
    """

    channel: str
    adstock_alpha: float
    adstock_max_lag: int
    target_roas: float
    over_report: float


CHANNEL_RESPONSES: dict[str, ChannelResponse] = {
    "paid_social": ChannelResponse("paid_social", 0.55, 8, 2.4, 1.9),
    "paid_search": ChannelResponse("paid_search", 0.25, 8, 1.5, 1.4),
}


@dataclass(frozen=True)
class MessagingResponse:
    """Per-recipient purchase uplift of an email/SMS send, spread over the days after it."""

    channel: str
    uplift_probability: float
    day_weights: tuple[float, ...]
    attribution_window_days: int


MESSAGING_RESPONSES: dict[str, MessagingResponse] = {
    "email": MessagingResponse("email", 0.010, (0.55, 0.30, 0.15), 5),
    "sms": MessagingResponse("sms", 0.014, (0.75, 0.25), 1),
    "flow_email": MessagingResponse("flow_email", 0.050, (0.70, 0.30), 5),
}


@dataclass(frozen=True)
class WorldConfig:
    """Size and identity of the simulated brand.

    Scale `n_customers` to scale order volume and ad budgets together (true ROAS
    is unchanged); `n_geos` and `campaigns_per_account` scale the ad reports.
    """

    seed: int = 7
    n_geos: int = 12
    campaigns_per_account: int = 4
    n_customers: int = 10_000
    shop_timezone: str = "America/New_York"
    shop_currency: str = "USD"
    orders_per_customer_day: float = 0.012
    trend_anchor: date = date(2024, 1, 1)
    email_subscriber_share: float = 0.15
    sms_subscriber_share: float = 0.05
    holdout_share: float = 0.10

    def __post_init__(self) -> None:
        if self.n_geos < 3:
            raise ValueError(f"n_geos must be at least 3 (got {self.n_geos})")
        if self.campaigns_per_account < 1:
            raise ValueError("campaigns_per_account must be at least 1")
        if self.n_customers < 100:
            raise ValueError(f"n_customers must be at least 100 (got {self.n_customers})")

    @property
    def volume_scale(self) -> float:
        return self.n_customers / 10_000


@dataclass(frozen=True)
class GeoExperiment:
    experiment_id: str
    platform: str
    channel: str
    start: date
    end: date  # inclusive
    holdout_geos: tuple[str, ...]

    def active_on(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class MessageSend:
    """One Klaviyo campaign send (or one day of a flow), with its randomized holdout."""

    campaign_id: str
    message_id: str
    name: str
    channel: str  # email | sms
    kind: str  # campaign | flow
    sent_at: datetime
    audience_list_id: str
    holdout_segment_id: str | None
    treated: np.ndarray  # customer row indexes
    holdout: np.ndarray

    @property
    def response(self) -> MessagingResponse:
        return MESSAGING_RESPONSES["flow_email" if self.kind == "flow" else self.channel]


def stable_hash(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def klaviyo_id(*parts: object) -> str:
    """A deterministic 26-character id in Klaviyo's ULID-like style."""
    digest = hashlib.sha1("|".join(map(str, parts)).encode()).digest()
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    n = int.from_bytes(digest[:16], "big")
    chars = []
    for _ in range(24):
        n, r = divmod(n, 32)
        chars.append(alphabet[r])
    return "01" + "".join(chars)


def fx_usd_per_unit(currency: str, day: date) -> float:
    """USD per unit of `currency` on `day`. Markets are not the brand's: no seed involved,
    so the published rates (the dbt seed `fx_rates`) hold for every sandbox world."""
    if currency == "USD":
        return 1.0
    if currency != "EUR":
        raise ValueError(f"sandbox has no FX series for {currency}")
    t = day.toordinal()
    noise = np.random.default_rng([stable_hash("fx"), t]).normal(0, 0.002)
    rate = 1.09 + 0.04 * math.sin(2 * math.pi * t / 410) + 0.015 * math.sin(2 * math.pi * t / 97)
    return round(float(rate + noise), 6)


def logistic_saturation(x: np.ndarray | float) -> np.ndarray | float:
    return (1 - np.exp(-x)) / (1 + np.exp(-x))


def _noisy_or_shapley(touched: np.ndarray) -> np.ndarray:
    """Exact Shapley values of v(T) = P(T) - P(empty) over the touched channels of one journey."""
    from itertools import combinations
    from math import factorial

    lifts = np.array([JOURNEY_MODEL[c][1] for c in JOURNEY_CHANNELS])
    members = [int(i) for i in np.flatnonzero(touched)]
    n = len(members)

    def value(subset: tuple[int, ...]) -> float:
        return (1 - JOURNEY_BASE_RATE) * (1 - float(np.prod([1 - lifts[i] for i in subset])))

    out = np.zeros(len(JOURNEY_CHANNELS))
    for i in members:
        others = [m for m in members if m != i]
        for size in range(n):
            weight = factorial(size) * factorial(n - size - 1) / factorial(n)
            for subset in combinations(others, size):
                out[i] += weight * (value((*subset, i)) - value(subset))
    return out


def daterange(start: date, end: date) -> Iterator[date]:
    for i in range((end - start).days + 1):
        yield start + timedelta(days=i)


class SandboxWorld:
    """The simulated brand. Cheap to construct; days are generated lazily and cached."""

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        self.shop_tz = ZoneInfo(self.config.shop_timezone)

    # ---- randomness ---------------------------------------------------------------

    def rng(self, stream: str, *keys: object) -> np.random.Generator:
        return np.random.default_rng(
            [self.config.seed, stable_hash(stream), *(stable_hash(k) for k in keys)]
        )

    # ---- reference tables ---------------------------------------------------------

    @cached_property
    def regions(self) -> tuple[Region, ...]:
        n_eu = min(len(EU_REGIONS), max(1, round(self.config.n_geos * 0.25)))
        n_us = self.config.n_geos - n_eu
        us = list(US_REGIONS[:n_us])
        for i in range(len(us), n_us):  # beyond the real catalogue: synthetic regions
            us.append(Region(f"US-R{i:03d}", f"Region {i:03d}", "US", 0.02, 1_030_000 + i))
        return (*us, *EU_REGIONS[:n_eu])

    @cached_property
    def geos(self) -> pd.DataFrame:
        df = pd.DataFrame([r.__dict__ for r in self.regions])
        df["share"] = df["weight"] / df["weight"].sum()
        df["market"] = np.where(df["country"] == "US", "US", "EU")
        return df

    @cached_property
    def ad_accounts(self) -> pd.DataFrame:
        return pd.DataFrame([a.__dict__ for a in AD_ACCOUNTS])

    @cached_property
    def campaigns(self) -> pd.DataFrame:
        """Every ad campaign, with its flight rule (`period_days`/`on_days`/`phase`)."""
        rows = []
        for a_idx, account in enumerate(AD_ACCOUNTS):
            themes = META_CAMPAIGN_THEMES if account.platform == "meta" else GOOGLE_CAMPAIGN_THEMES
            for k in range(self.config.campaigns_per_account):
                theme = themes[k % len(themes)].format(m=account.market)
                name = theme if k < len(themes) else f"{theme} {k}"
                evergreen = k < 2
                if account.platform == "meta":
                    campaign_id = str(23_851_000_000_000_000 + a_idx * 1000 + k)
                else:
                    campaign_id = str(17_400_000_000 + a_idx * 1000 + k)
                rows.append(
                    {
                        "platform": account.platform,
                        "channel": PLATFORM_CHANNEL[account.platform],
                        "account_id": account.account_id,
                        "campaign_id": campaign_id,
                        "campaign_name": name,
                        "market": account.market,
                        "currency": account.currency,
                        "is_brand": account.platform == "google_ads" and k == 0,
                        "evergreen": evergreen,
                        "period_days": 0 if evergreen else 63 + 7 * k,
                        "on_days": 0 if evergreen else 35,
                        "phase": (k * 17) % (63 + 7 * k),
                        "budget_weight": 1.0 if evergreen else 0.6,
                        "created_time": "2023-06-01T09:00:00+0000",
                    }
                )
        df = pd.DataFrame(rows)
        total = df.groupby("account_id")["budget_weight"].transform("sum")
        budgets = df["account_id"].map({a.account_id: a.daily_budget for a in AD_ACCOUNTS})
        df["daily_budget"] = budgets * df["budget_weight"] / total * self.config.volume_scale
        return df

    @cached_property
    def _campaign_geo_mask(self) -> np.ndarray:
        """campaign x geo targeting weights: the campaign's market regions, by share."""
        geos = self.geos
        mask = np.zeros((len(self.campaigns), len(geos)))
        for i, market in enumerate(self.campaigns["market"]):
            in_market = (geos["market"] == market).to_numpy()
            mask[i, in_market] = geos["share"].to_numpy()[in_market]
            mask[i] /= mask[i].sum()
        return mask

    @cached_property
    def customers(self) -> pd.DataFrame:
        """The customer base; subscribers are also Klaviyo profiles."""
        cfg = self.config
        rng = self.rng("customers")
        n = cfg.n_customers
        idx = np.arange(n)
        geo_idx = rng.choice(len(self.geos), size=n, p=self.geos["share"].to_numpy())
        email = rng.random(n) < cfg.email_subscriber_share
        sms = rng.random(n) < cfg.sms_subscriber_share
        created = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
        return pd.DataFrame(
            {
                "customer_id": 7_000_000_000 + idx,
                "email": [f"customer{i:06d}@example.com" for i in idx],
                "geo_idx": geo_idx,
                "geo_id": self.geos["geo_id"].to_numpy()[geo_idx],
                "email_subscribed": email,
                "sms_subscribed": sms,
                "profile_id": [klaviyo_id(cfg.seed, "profile", i) for i in idx],
                "created_at": created,
            }
        )

    @cached_property
    def _customers_by_geo(self) -> list[np.ndarray]:
        geo_idx = self.customers["geo_idx"].to_numpy()
        return [np.flatnonzero(geo_idx == g) for g in range(len(self.geos))]

    @cached_property
    def expected_order_value(self) -> float:
        """E[total_price] of an order: items x mean price, less the expected discount."""
        mean_items = float((ITEM_COUNT_PROBS * np.arange(1, 4)).sum())
        mean_price = float(np.mean([p.price for p in PRODUCTS]))
        return mean_items * mean_price * (1 - DISCOUNT_RATE * DISCOUNT_SHARE)

    # ---- calendar effects and FX --------------------------------------------------

    def fx_usd_per_unit(self, currency: str, day: date) -> float:
        return fx_usd_per_unit(currency, day)

    @staticmethod
    def black_friday(year: int) -> date:
        nov1 = date(year, 11, 1)
        first_thursday = nov1 + timedelta(days=(3 - nov1.weekday()) % 7)
        return first_thursday + timedelta(days=22)

    def holiday_multiplier(self, day: date) -> float:
        bf = self.black_friday(day.year)
        special = {
            bf: 1.9,
            bf + timedelta(days=3): 1.6,  # Cyber Monday
            bf - timedelta(days=1): 0.85,  # Thanksgiving
            bf + timedelta(days=1): 1.3,
            bf + timedelta(days=2): 1.25,
            date(day.year, 12, 24): 0.7,
            date(day.year, 12, 25): 0.55,
            date(day.year, 1, 1): 0.8,
            date(day.year, 7, 4): 0.9,
        }
        if day in special:
            return special[day]
        if date(day.year, 12, 1) <= day <= date(day.year, 12, 18):
            return 1.2
        return 1.0

    def baseline_revenue(self, day: date) -> np.ndarray:
        """Expected revenue without any marketing, per geo (USD)."""
        cfg = self.config
        years = (day - cfg.trend_anchor).days / 365.25
        trend = max(0.3, 1 + 0.12 * years)
        weekly = WEEKLY_PATTERN[day.weekday()]
        doy = day.timetuple().tm_yday
        yearly = (
            1
            + 0.10 * math.sin(2 * math.pi * (doy - 80) / 365.25)
            + 0.05 * math.cos(4 * math.pi * doy / 365.25)
        )
        level = cfg.n_customers * cfg.orders_per_customer_day * self.expected_order_value
        national = level * trend * weekly * yearly * self.holiday_multiplier(day)
        return national * self.geos["share"].to_numpy()

    def budget_multiplier(self, day: date) -> float:
        bf = self.black_friday(day.year)
        if bf - timedelta(days=10) <= day <= bf + timedelta(days=4):
            return 1.6
        if date(day.year, 12, 1) <= day <= date(day.year, 12, 18):
            return 1.3
        if date(day.year, 1, 1) <= day <= date(day.year, 1, 14):
            return 0.8
        return 1.0

    # ---- experiments --------------------------------------------------------------

    def experiments_for_year(self, year: int) -> list[GeoExperiment]:
        """Two geo holdouts a year: Meta in late summer, Google Ads in spring."""
        us_geos = self.geos.loc[self.geos["market"] == "US", "geo_id"].tolist()
        n_hold = max(1, len(us_geos) // 3)
        out = []
        for platform, month, mday, days in (("meta", 8, 4, 42), ("google_ads", 4, 6, 28)):
            first = date(year, month, mday)
            start = first + timedelta(days=(7 - first.weekday()) % 7)
            # The test design is published in the experiment registry seed: seed-independent.
            rng = np.random.default_rng([stable_hash("experiment"), stable_hash(platform), year])
            holdout = tuple(sorted(rng.choice(us_geos, size=n_hold, replace=False).tolist()))
            out.append(
                GeoExperiment(
                    experiment_id=f"geo_holdout_{platform}_{year}",
                    platform=platform,
                    channel=PLATFORM_CHANNEL[platform],
                    start=start,
                    end=start + timedelta(days=days - 1),
                    holdout_geos=holdout,
                )
            )
        return out

    def experiments(self, start: date, end: date) -> list[GeoExperiment]:
        exps = [e for y in range(start.year, end.year + 1) for e in self.experiments_for_year(y)]
        return [e for e in exps if e.start <= end and e.end >= start]

    # ---- ad delivery --------------------------------------------------------------

    def campaign_active(self, day: date) -> np.ndarray:
        c = self.campaigns
        t = day.toordinal()
        flight = (t + c["phase"].to_numpy()) % np.maximum(c["period_days"].to_numpy(), 1)
        return c["evergreen"].to_numpy() | (flight < c["on_days"].to_numpy())

    @lru_cache(maxsize=8192)  # noqa: B019 - the world lives as long as the process
    def campaign_geo_spend(self, day: date, with_experiments: bool = True) -> np.ndarray:
        """Spend per campaign x geo in each account's own currency."""
        rng = self.rng("spend", day)
        c = self.campaigns
        daily = c["daily_budget"].to_numpy() * self.budget_multiplier(day)
        daily = daily * rng.lognormal(-0.5 * 0.15**2, 0.15, len(c)) * self.campaign_active(day)
        geo_noise = rng.lognormal(-0.5 * 0.1**2, 0.1, self._campaign_geo_mask.shape)
        spend = daily[:, None] * self._campaign_geo_mask * geo_noise
        if with_experiments:
            geo_ids = self.geos["geo_id"].to_numpy()
            for exp in self.experiments(day, day):
                rows = (c["platform"] == exp.platform).to_numpy()
                cols = np.isin(geo_ids, exp.holdout_geos)
                spend[np.ix_(rows, cols)] = 0.0
        return np.round(spend, 2)

    @cached_property
    def _channel_rows(self) -> list[np.ndarray]:
        """Boolean campaign masks, one per paid channel."""
        channels = self.campaigns["channel"].to_numpy()
        return [channels == channel for channel in PAID_CHANNELS]

    def campaign_fx(self, day: date) -> np.ndarray:
        """USD per unit of each campaign's account currency on `day`."""
        rates = {cur: self.fx_usd_per_unit(cur, day) for cur in ("USD", "EUR")}
        return np.array([rates[cur] for cur in self.campaigns["currency"]])

    @lru_cache(maxsize=8192)  # noqa: B019
    def channel_geo_spend_usd(self, day: date, with_experiments: bool = True) -> np.ndarray:
        """Spend per paid channel x geo in USD."""
        spend_usd = self.campaign_geo_spend(day, with_experiments) * self.campaign_fx(day)[:, None]
        return np.stack([spend_usd[rows].sum(axis=0) for rows in self._channel_rows])

    @cached_property
    def _typical_spend_usd(self) -> np.ndarray:
        """Typical daily USD spend per channel x geo, which anchors the saturation scale."""
        c = self.campaigns
        active_share = np.where(c["evergreen"], 1.0, c["on_days"] / np.maximum(c["period_days"], 1))
        fx = np.where(c["currency"] == "EUR", 1.09, 1.0)
        per_campaign = (c["daily_budget"] * active_share * fx).to_numpy()
        out = np.zeros((len(PAID_CHANNELS), len(self.geos)))
        for ch_idx, channel in enumerate(PAID_CHANNELS):
            rows = (c["channel"] == channel).to_numpy()
            out[ch_idx] = (per_campaign[rows, None] * self._campaign_geo_mask[rows]).sum(axis=0)
        return out

    def adstocked_spend(self, day: date, with_experiments: bool = True) -> np.ndarray:
        out = np.zeros((len(PAID_CHANNELS), len(self.geos)))
        for ch_idx, channel in enumerate(PAID_CHANNELS):
            resp = CHANNEL_RESPONSES[channel]
            weights = resp.adstock_alpha ** np.arange(resp.adstock_max_lag)
            weights = weights / weights.sum()
            for lag, w in enumerate(weights):
                lagged = self.channel_geo_spend_usd(day - timedelta(days=lag), with_experiments)
                out[ch_idx] += w * lagged[ch_idx]
        return out

    def paid_contribution(self, day: date, with_experiments: bool = True) -> np.ndarray:
        """Expected incremental revenue per paid channel x geo (USD)."""
        s0 = self._typical_spend_usd
        x = np.divide(
            self.adstocked_spend(day, with_experiments), s0, out=np.zeros_like(s0), where=s0 > 0
        )
        roas = np.array([CHANNEL_RESPONSES[c].target_roas for c in PAID_CHANNELS])[:, None]
        beta = roas * s0 / float(logistic_saturation(1.0))
        return beta * logistic_saturation(x)

    def ad_report(self, day: date) -> pd.DataFrame:
        """What the ad platforms will (finally) report for `day`: one row per campaign x geo.

        Conversions are the platform's own claim: the channel's true incremental
        orders inflated by `over_report`, and for brand search a slice of the
        organic baseline too. Values are in the account currency.
        """
        return self._ad_report(day).copy()

    @lru_cache(maxsize=4096)  # noqa: B019
    def _ad_report(self, day: date) -> pd.DataFrame:
        rng = self.rng("ad_report", day)
        c = self.campaigns
        spend = self.campaign_geo_spend(day)
        fx = self.campaign_fx(day)
        spend_usd = spend * fx[:, None]
        contrib = self.paid_contribution(day)
        baseline = self.baseline_revenue(day)
        aov = self.expected_order_value
        rows = []
        for i, camp in enumerate(c.itertuples()):
            ch_idx = PAID_CHANNELS.index(camp.channel)
            channel_spend = self.channel_geo_spend_usd(day)[ch_idx]
            share = np.divide(
                spend_usd[i],
                channel_spend,
                out=np.zeros_like(channel_spend),
                where=channel_spend > 0,
            )
            true_orders = contrib[ch_idx] * share / aov
            claimed = true_orders * CHANNEL_RESPONSES[str(camp.channel)].over_report
            if camp.is_brand:
                claimed = claimed + 0.05 * baseline / aov * (spend[i] > 0)
            cpm = (9.0 if camp.platform == "meta" else 22.0) * self.budget_multiplier(day) ** 0.5
            impressions = rng.poisson(np.maximum(spend_usd[i], 0) / cpm * 1000)
            ctr = 0.011 if camp.platform == "meta" else 0.045
            clicks = rng.binomial(impressions, ctr)
            conversions = rng.poisson(claimed)
            value_usd = conversions * aov * rng.lognormal(-0.005, 0.1, len(conversions))
            for g, geo in enumerate(self.regions):
                if spend[i, g] <= 0 and impressions[g] == 0:
                    continue
                rows.append(
                    {
                        "date": day,
                        "platform": camp.platform,
                        "account_id": camp.account_id,
                        "campaign_id": camp.campaign_id,
                        "campaign_name": camp.campaign_name,
                        "geo_id": geo.geo_id,
                        "region_name": geo.name,
                        "google_criterion_id": geo.google_criterion_id,
                        "currency": camp.currency,
                        "spend": float(spend[i, g]),
                        "impressions": int(impressions[g]),
                        "clicks": int(clicks[g]),
                        "conversions": int(conversions[g]),
                        "conversion_value": round(float(value_usd[g] / fx[i]), 2),
                    }
                )
        columns = [
            "date", "platform", "account_id", "campaign_id", "campaign_name", "geo_id",
            "region_name", "google_criterion_id", "currency", "spend", "impressions", "clicks",
            "conversions", "conversion_value",
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=columns)

    @staticmethod
    def conversion_maturity(age_days: int, window_days: int) -> float:
        """Share of a day's final conversions a platform has reported `age_days` later."""
        if age_days < 0:
            return 0.0
        return min(1.0, 0.8 + 0.2 * age_days / window_days)

    # ---- messaging (Klaviyo) ------------------------------------------------------

    @cached_property
    def flows(self) -> pd.DataFrame:
        cfg = self.config
        return pd.DataFrame(
            [
                {
                    "flow_id": klaviyo_id(cfg.seed, "flow", "abandoned_cart"),
                    "name": "Abandoned Cart Reminder",
                    "trigger_type": "Metric",
                    "created": datetime(2023, 3, 2, 15, 4, tzinfo=ZoneInfo("UTC")),
                    "update_every_days": 91,
                },
                {
                    "flow_id": klaviyo_id(cfg.seed, "flow", "browse_abandonment"),
                    "name": "Browse Abandonment",
                    "trigger_type": "Metric",
                    "created": datetime(2023, 5, 17, 11, 40, tzinfo=ZoneInfo("UTC")),
                    "update_every_days": 120,
                },
            ]
        )

    def flow_updated(self, flow: pd.Series, as_of: datetime) -> datetime:
        """Flows get edited on a fixed cadence; the last edit before `as_of`."""
        created: datetime = flow["created"]
        step = timedelta(days=int(flow["update_every_days"]))
        n = max(0, (as_of - created) // step)
        return created + n * step

    def _campaign_schedule(self, day: date) -> list[tuple[str, time]]:
        sends: list[tuple[str, time]] = []
        bf = self.black_friday(day.year)
        peak = bf - timedelta(days=10) <= day <= date(day.year, 12, 20)
        if day.weekday() == 1 or (peak and day.weekday() == 3):
            sends.append(("email", time(10, 0)))
        if day.weekday() == 4 and day.isocalendar().week % 2 == 0:
            sends.append(("sms", time(12, 0)))
        return sends

    @lru_cache(maxsize=2048)  # noqa: B019
    def message_sends(self, day: date) -> tuple[MessageSend, ...]:
        """Campaign sends (with randomized holdouts) and flow messages on `day`."""
        cfg = self.config
        cust = self.customers
        sends = []
        for channel, at in self._campaign_schedule(day):
            audience = np.flatnonzero(cust[f"{channel}_subscribed"].to_numpy())
            rng = self.rng("holdout", day, channel)
            is_holdout = rng.random(len(audience)) < cfg.holdout_share
            campaign_id = klaviyo_id(cfg.seed, "campaign", day, channel)
            label = "Weekly Newsletter" if channel == "email" else "SMS Drop"
            if self.budget_multiplier(day) > 1.5:
                label = "BFCM Early Access" if channel == "email" else "BFCM SMS Blast"
            sends.append(
                MessageSend(
                    campaign_id=campaign_id,
                    message_id=klaviyo_id(cfg.seed, "message", day, channel),
                    name=f"{label} {day.isoformat()}",
                    channel=channel,
                    kind="campaign",
                    sent_at=datetime.combine(day, at, self.shop_tz),
                    audience_list_id=klaviyo_id(cfg.seed, "list", channel)[:6],
                    holdout_segment_id=klaviyo_id(cfg.seed, "holdout", campaign_id)[:6],
                    treated=audience[~is_holdout],
                    holdout=audience[is_holdout],
                )
            )
        subscribers = np.flatnonzero(cust["email_subscribed"].to_numpy())
        for flow in self.flows.itertuples():
            rng = self.rng("flow", day, flow.flow_id)
            n = rng.poisson(len(subscribers) * 0.004)
            recipients = np.sort(
                rng.choice(subscribers, size=min(n, len(subscribers)), replace=False)
            )
            sends.append(
                MessageSend(
                    campaign_id=str(flow.flow_id),
                    message_id=klaviyo_id(cfg.seed, "flow_message", flow.flow_id),
                    name=str(flow.name),
                    channel="email",
                    kind="flow",
                    sent_at=datetime.combine(day, time(0, 0), self.shop_tz),
                    audience_list_id="",
                    holdout_segment_id=None,
                    treated=recipients,
                    holdout=np.array([], dtype=int),
                )
            )
        return tuple(sends)

    def _messaging_conversions(self, send: MessageSend) -> tuple[np.ndarray, np.ndarray]:
        """Which treated recipients buy because of the send, and how many days later."""
        resp = send.response
        rng = self.rng("messaging_conversion", send.campaign_id, send.sent_at.date())
        converts = rng.random(len(send.treated)) < resp.uplift_probability
        offsets = rng.choice(len(resp.day_weights), size=len(send.treated), p=resp.day_weights)
        return send.treated[converts], offsets[converts]

    # ---- orders -------------------------------------------------------------------

    @lru_cache(maxsize=4096)  # noqa: B019
    def orders_created(self, day: date) -> tuple[dict, ...]:
        """Every order created on `day` (shop time zone), with its full life cycle."""
        rng = self.rng("orders", day)
        aov = self.expected_order_value
        expected = self.baseline_revenue(day) + self.paid_contribution(day).sum(axis=0)
        counts = rng.poisson(expected / aov)
        buyers: list[tuple[int, int]] = []  # (customer, earliest second of the day)
        for g, n in enumerate(counts):
            pool = self._customers_by_geo[g]
            if len(pool) and n:
                buyers.extend((int(b), 0) for b in rng.choice(pool, size=n))
        for lag in range(3):
            for send in self.message_sends(day - timedelta(days=lag)):
                who, offsets = self._messaging_conversions(send)
                # An order a message caused comes after the message, never before it.
                sent = send.sent_at.hour * 3600 + send.sent_at.minute * 60 + 60 if lag == 0 else 0
                buyers.extend((int(b), sent) for b in who[offsets == lag])
        return tuple(
            self._build_order(day, n, buyer, not_before, rng)
            for n, (buyer, not_before) in enumerate(buyers)
        )

    @cached_property
    def _customer_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.customers
        return c["customer_id"].to_numpy(), c["email"].to_numpy(), c["geo_idx"].to_numpy()

    def _build_order(
        self, day: date, n: int, buyer: int, not_before: int, rng: np.random.Generator
    ) -> dict:
        customer_ids, emails, geo_idx = self._customer_arrays
        geo = self.regions[int(geo_idx[buyer])]
        created = datetime.combine(day, time(0, 0), self.shop_tz) + timedelta(
            seconds=int(rng.integers(not_before, 86_400))
        )
        n_items = int(rng.choice(3, p=ITEM_COUNT_PROBS)) + 1
        items = [PRODUCTS[i] for i in rng.choice(len(PRODUCTS), size=n_items)]
        subtotal = round(sum(p.price for p in items), 2)
        discount = round(subtotal * DISCOUNT_RATE, 2) if rng.random() < DISCOUNT_SHARE else 0.0
        order_id = SHOPIFY_ORDER_ID_BASE + day.toordinal() * 10_000 + n
        fulfilled = created + timedelta(hours=int(rng.integers(18, 72)))
        fate = rng.random()
        refund_at = (
            created + timedelta(days=int(rng.integers(3, 21)), hours=int(rng.integers(0, 24)))
            if fate < REFUND_RATE
            else None
        )
        cancel_at = (
            created + timedelta(hours=int(rng.integers(1, 20)))
            if REFUND_RATE <= fate < REFUND_RATE + CANCEL_RATE
            else None
        )
        return {
            "id": order_id,
            "number": (day - date(2020, 1, 1)).days * 10_000 + n,
            "created_at": created,
            "fulfilled_at": None if cancel_at else fulfilled,
            "refunded_at": refund_at,
            "cancelled_at": cancel_at,
            "customer_idx": buyer,
            "customer_id": int(customer_ids[buyer]),
            "email": str(emails[buyer]),
            "geo_id": geo.geo_id,
            "country": geo.country,
            "items": items,
            "subtotal": subtotal,
            "discount": discount,
            "total": round(subtotal - discount, 2),
        }

    # ---- touchpoint journeys -------------------------------------------------------

    @lru_cache(maxsize=1024)  # noqa: B019
    def journeys(self, day: date) -> pd.DataFrame:
        """Visitor journeys that ended on `day`: ordered touchpoints and whether they converted.

        Each journey touches a random set of channels (each present with probability
        `presence`, visited one to three times, in random order) and converts with
        probability `1 - (1 - base) * prod(1 - lift_c)` over the channels it touched: a
        noisy-OR, so every channel's causal share is known exactly (see
        :meth:`journey_truth`).
        """
        rng = self.rng("journeys", day)
        n = rng.poisson(self.config.n_customers * JOURNEYS_PER_CUSTOMER_DAY)
        channels = np.array(JOURNEY_CHANNELS)
        presence = np.array([JOURNEY_MODEL[c][0] for c in JOURNEY_CHANNELS])
        touched = rng.random((n, len(channels))) < presence
        empty = ~touched.any(axis=1)
        touched[empty, rng.integers(0, len(channels), empty.sum())] = True
        p_convert = self._journey_conversion_probability(touched)
        converted = rng.random(n) < p_convert
        rows = []
        start = datetime.combine(day, time(0, 0), self.shop_tz)
        for j in range(n):
            visits = np.repeat(channels[touched[j]], rng.integers(1, 4, touched[j].sum()))
            rng.shuffle(visits)
            rows.append(
                {
                    "journey_id": f"j{day.toordinal()}-{j:05d}",
                    "date": day,
                    "path": [str(v) for v in visits],
                    "touchpoints": len(visits),
                    "converted": bool(converted[j]),
                    "conversion_value": round(float(rng.lognormal(4.3, 0.45)), 2)
                    if converted[j]
                    else 0.0,
                    "ended_at": start + timedelta(seconds=int(rng.integers(0, 86_400))),
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "journey_id", "date", "path", "touchpoints", "converted",
                "conversion_value", "ended_at",
            ],
        )  # fmt: skip

    @staticmethod
    def _journey_conversion_probability(touched: np.ndarray) -> np.ndarray:
        lifts = np.array([JOURNEY_MODEL[c][1] for c in JOURNEY_CHANNELS])
        no_conversion = (1 - JOURNEY_BASE_RATE) * np.prod(np.where(touched, 1 - lifts, 1.0), axis=1)
        return 1 - no_conversion

    def journey_truth(self, start: date, end: date) -> pd.DataFrame:
        """Each channel's true causal credit for the conversions of the journeys in range.

        - `removal_conversions`: expected conversions lost if the channel's touches were
          removed from every journey (the counterfactual a Markov removal effect targets).
        - `shapley_conversions`: exact Shapley value of the expected-conversion game
          v(T) = P(convert | touched channels T) - P(convert | none) on each journey,
          summed; the shares add up to all incremental conversions.
        """
        frames = [self.journeys(d) for d in daterange(start, end)]
        paths = pd.concat(frames, ignore_index=True)["path"] if frames else pd.Series([])
        k = len(JOURNEY_CHANNELS)
        touched = np.array([[c in set(p) for c in JOURNEY_CHANNELS] for p in paths]).reshape(-1, k)
        full = self._journey_conversion_probability(touched)
        removal, shapley = np.zeros(k), np.zeros(k)
        for c in range(k):
            without = touched.copy()
            without[:, c] = False
            removal[c] = (full - self._journey_conversion_probability(without)).sum()
        for row in np.unique(touched, axis=0):
            count = int((touched == row).all(axis=1).sum())
            shapley += count * _noisy_or_shapley(row)
        return pd.DataFrame(
            {
                "channel": JOURNEY_CHANNELS,
                "removal_conversions": removal,
                "shapley_conversions": shapley,
                "expected_conversions": full.sum(),
            }
        )

    # ---- ground truth -------------------------------------------------------------

    def channel_daily(self, start: date, end: date) -> pd.DataFrame:
        """Per day and channel (and `baseline`): spend (USD) and the expected revenue it caused.

        Expected gross revenue of the shop, all regions, split by cause: the sum over
        channels of a day is what orders are drawn from, before noise.
        """
        aov = self.expected_order_value
        daily_rows = []
        for day in daterange(start, end):
            spend = self.channel_geo_spend_usd(day).sum(axis=1)
            contrib = self.paid_contribution(day).sum(axis=1)
            for ch_idx, channel in enumerate(PAID_CHANNELS):
                daily_rows.append((day, channel, spend[ch_idx], contrib[ch_idx]))
            messaging = {"email": 0.0, "sms": 0.0}
            for lag in range(3):
                for send in self.message_sends(day - timedelta(days=lag)):
                    weights = send.response.day_weights
                    if lag < len(weights):
                        p = send.response.uplift_probability * weights[lag]
                        messaging[send.channel] += len(send.treated) * p * aov
            for channel, value in messaging.items():
                daily_rows.append((day, channel, 0.0, value))
            daily_rows.append((day, "baseline", 0.0, float(self.baseline_revenue(day).sum())))
        channel_daily = pd.DataFrame(
            daily_rows, columns=["date", "channel", "spend_usd", "incremental_revenue"]
        )
        return channel_daily

    def truth(self, start: date, end: date) -> dict[str, pd.DataFrame]:
        """The causal truth behind `start`..`end` (inclusive), as tables.

        - channel_daily: per day and channel, spend (USD) and the expected incremental
          revenue and orders it caused (gross of refunds/cancellations; multiply by
          `1 - REFUND_RATE - CANCEL_RATE` for net).
        - channel_summary: the same over the range, with true ROAS.
        - geo_experiments: for each geo holdout overlapping the range, the revenue the
          switched-off ads would have caused in the holdout geos over the test window.
        - email_holdouts: per campaign send, the true incremental orders and revenue.
        - fx_rates: the FX series used.
        - journey_attribution: each channel's true credit for the journeys' conversions.
        """
        aov = self.expected_order_value
        channel_daily = self.channel_daily(start, end)
        channel_daily["incremental_orders"] = channel_daily["incremental_revenue"] / aov
        summary = (
            channel_daily[channel_daily["channel"] != "baseline"]
            .groupby("channel", as_index=False)[["spend_usd", "incremental_revenue"]]
            .sum()
        )
        summary["roas"] = np.where(
            summary["spend_usd"] > 0,
            summary["incremental_revenue"] / summary["spend_usd"].where(summary["spend_usd"] > 0),
            np.nan,
        )
        return {
            "channel_daily": channel_daily,
            "channel_summary": summary,
            "geo_experiments": self.geo_experiment_truth(start, end),
            "email_holdouts": self.email_holdout_truth(start, end),
            "journey_attribution": self.journey_truth(start, end),
            "fx_rates": pd.DataFrame(
                [(d, "EUR", self.fx_usd_per_unit("EUR", d)) for d in daterange(start, end)],
                columns=["date", "currency", "usd_per_unit"],
            ),
        }

    def geo_experiment_truth(self, start: date, end: date) -> pd.DataFrame:
        """Each geo holdout overlapping the range: the revenue its switched-off ads would have
        caused in the holdout regions over the test (gross of refunds and cancellations)."""
        rows = []
        geo_ids = self.geos["geo_id"].to_numpy()
        for exp in self.experiments(start, end):
            ch_idx = PAID_CHANNELS.index(exp.channel)
            cols = np.isin(geo_ids, exp.holdout_geos)
            lost, base = 0.0, 0.0
            for day in daterange(exp.start, exp.end):
                factual = self.paid_contribution(day)[ch_idx, cols].sum()
                bau = self.paid_contribution(day, with_experiments=False)[ch_idx, cols].sum()
                lost += bau - factual
                base += self.baseline_revenue(day)[cols].sum() + (
                    self.paid_contribution(day, with_experiments=False)[:, cols].sum()
                )
            n_days = (exp.end - exp.start).days + 1
            rows.append(
                {
                    "experiment_id": exp.experiment_id,
                    "platform": exp.platform,
                    "channel": exp.channel,
                    "start_date": exp.start,
                    "end_date": exp.end,
                    "holdout_geos": ",".join(exp.holdout_geos),
                    "n_holdout_geos": len(exp.holdout_geos),
                    "true_incremental_revenue": lost,
                    "true_effect_per_geo_day": lost / (n_days * len(exp.holdout_geos)),
                    "true_relative_lift": lost / (base - lost),
                }
            )
        return pd.DataFrame(rows)

    def email_holdout_truth(self, start: date, end: date) -> pd.DataFrame:
        """Each campaign send in the range: its true incremental orders and revenue."""
        aov = self.expected_order_value
        rows = []
        for day in daterange(start, end):
            for send in self.message_sends(day):
                if send.kind != "campaign":
                    continue
                p = send.response.uplift_probability
                rows.append(
                    {
                        "campaign_id": send.campaign_id,
                        "channel": send.channel,
                        "send_date": day,
                        "n_treated": len(send.treated),
                        "n_holdout": len(send.holdout),
                        "uplift_probability": p,
                        "true_incremental_orders": len(send.treated) * p,
                        "true_incremental_revenue": len(send.treated) * p * aov,
                        "true_revenue_per_recipient": p * aov,
                    }
                )
        return pd.DataFrame(rows)
