"""A fake Meta Marketing API (Graph API `/vNN.0/`) serving the sandbox world's Meta accounts.

What it reproduces from the real API:

- ad accounts (`/me/adaccounts`, `/act_{id}`) and campaign-level daily Ads Insights with
  every number as a string, `actions`/`action_values` lists keyed by attribution window,
  and `omni_purchase` repeating the pixel purchase (the real double-count trap);
- cursor paging with an absolute `paging.next` that carries `access_token` when the
  request sent it as a query parameter;
- async report runs (`POST /act_{id}/insights`, poll `/{report_run_id}`, read
  `/{report_run_id}/insights`);
- errors coded in the JSON body (throttles 4/17/613/80000 with HTTP 400 and the
  `x-business-use-case-usage` header, 190 for tokens, 100 for parameters).

Conversions are shown as they stood at `as_of` (`SandboxWorld.conversion_maturity`, 28-day
window); days after `as_of` have no data and days without delivery have no rows.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pandas as pd

from cfap_orchestration.sandbox.fake_apis.base import FakeApi, Fault, base_url_of, json_response
from cfap_orchestration.sandbox.world import SandboxWorld, daterange

MAX_LIMIT = 500
DEFAULT_LIMIT = 25
MATURITY_WINDOW_DAYS = 28
# Share of the default-setting total ("value" = 7d_click + 1d_view) each window reports.
WINDOW_SHARES: dict[str, float] = {
    "1d_click": 0.60,
    "7d_click": 0.75,
    "28d_click": 0.78,
    "1d_view": 0.25,
    "7d_view": 0.30,
    "28d_view": 0.32,
}
LINK_CLICK_SHARE = 0.82
ADD_TO_CART_PER_PURCHASE = 3.4
INSIGHTS_FIELDS = frozenset(
    {
        "account_id",
        "account_name",
        "account_currency",
        "campaign_id",
        "campaign_name",
        "date_start",
        "date_stop",
        "impressions",
        "clicks",
        "spend",
        "actions",
        "action_values",
    }
)
INSIGHTS_PARAMS = frozenset(
    {
        "level",
        "time_increment",
        "time_range",
        "fields",
        "action_attribution_windows",
        "breakdowns",
        "limit",
        "after",
        "access_token",
    }
)
ACCOUNT_FIELDS = ("id", "account_id", "name", "currency", "timezone_name", "account_status")
THROTTLES: dict[int, tuple[int, str]] = {
    4: (1504022, "(#4) Application request limit reached"),
    17: (2446079, "(#17) User request limit reached"),
    613: (1487742, "(#613) Calls to this api have exceeded the rate limit."),
    80000: (
        2446079,
        "(#80000) There have been too many calls from this ad-account. Wait a bit and try "
        "again. For more info, please refer to "
        "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
    ),
}
_VERSIONED = re.compile(r"^/v\d+\.\d+(/.*)$")
_ACCOUNT = re.compile(r"^/act_(\d+)$")
_ACCOUNT_INSIGHTS = re.compile(r"^/act_(\d+)/insights$")
_REPORT_RUN = re.compile(r"^/(\d{12,})(/insights)?$")


class GraphError(Exception):
    """A Graph API error to send back as `{"error": {...}}`."""

    def __init__(
        self, message: str, code: int = 100, *, subcode: int | None = None, kind: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.kind = kind or "OAuthException"


@dataclass
class InsightsQuery:
    account_id: str
    since: date
    until: date
    fields: tuple[str, ...]
    windows: tuple[str, ...]
    breakdowns: tuple[str, ...]

    def cache_key(self) -> tuple[Any, ...]:
        return (self.account_id, self.since, self.until, self.fields, self.windows, self.breakdowns)


@dataclass
class ReportRun:
    run_id: str
    query: InsightsQuery
    fails: bool
    polls: int = 0


class MetaAdsFakeApi(FakeApi):
    """The Graph API for the world's Meta ad accounts.

    Knobs: `polls_until_complete` (status polls before a report run completes; a huge
    number makes jobs hang), `fail_jobs` (how many of the next report runs end in
    "Job Failed"), `usage_percent` (what the usage headers report on successful calls).
    """

    platform = "meta_ads"
    renamed_field = ("spend", "amount_spent")

    def __init__(
        self,
        world: SandboxWorld,
        *,
        token: str = "meta_ads-sandbox-token",
        as_of: datetime | None = None,
        polls_until_complete: int = 2,
        fail_jobs: int = 0,
        usage_percent: float = 4.0,
    ) -> None:
        super().__init__(world, token=token, as_of=as_of)
        self.polls_until_complete = max(1, polls_until_complete)
        self.fail_jobs = fail_jobs
        self.usage_percent = usage_percent
        self.jobs: dict[str, ReportRun] = {}
        self._job_ids = itertools.count(612_345_678_901_000)
        self._trace_ids = itertools.count(1)
        self._cache: OrderedDict[tuple[Any, ...], list[dict[str, Any]]] = OrderedDict()

    # ---- auth and errors ----------------------------------------------------------

    def is_authorized(self, request: httpx.Request) -> bool:
        return _token_of(request) == self.token

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        if not _token_of(request):
            return self._error(
                400, GraphError("An access token is required to request this resource.", 104)
            )
        return self._expired_token()

    def error_response(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "rate_limit":
            return self._throttle(fault, request)
        if fault.kind == "server_error":
            return self._server_error(fault)
        if fault.kind == "expired_token":
            return self._expired_token()
        if fault.kind == "bad_request":
            return self._error(400, GraphError("(#100) Invalid parameter", 100))
        raise ValueError(f"fault kind {fault.kind!r} has no error response")

    def _expired_token(self) -> httpx.Response:
        message = (
            "Error validating access token: Session has expired on Monday, 01-Jul-24 "
            "10:00:00 PDT. The current time is Tuesday, 02-Jul-24 09:14:07 PDT."
        )
        return self._error(400, GraphError(message, 190, subcode=463))

    def _server_error(self, fault: Fault) -> httpx.Response:
        code = fault.code if fault.code in (1, 2) else 1
        message = (
            "An unknown error occurred"
            if code == 1
            else "An unexpected error has occurred. Please retry your request later."
        )
        error = {"message": message, "type": "OAuthException", "code": code}
        error.update({"is_transient": True, "fbtrace_id": self._trace_id()})
        return json_response(fault.status or 500, {"error": error})

    def _throttle(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        code = fault.code or 17
        subcode, message = THROTTLES.get(
            code, (2446079, f"(#{code}) Business use case request limit reached.")
        )
        error = {"message": message, "type": "OAuthException", "code": code}
        error.update({"error_subcode": subcode, "is_transient": True})
        error["fbtrace_id"] = self._trace_id()
        regain_minutes = int(fault.retry_after // 60)
        headers = self._usage_headers(request, 100.0, regain_minutes)
        headers["retry-after"] = f"{fault.retry_after:g}"
        return json_response(400, {"error": error}, headers)

    def _error(self, status: int, error: GraphError) -> httpx.Response:
        body: dict[str, Any] = {"message": str(error), "type": error.kind, "code": error.code}
        if error.subcode is not None:
            body["error_subcode"] = error.subcode
        body["fbtrace_id"] = self._trace_id()
        return json_response(status, {"error": body})

    def _trace_id(self) -> str:
        digest = hashlib.sha1(str(next(self._trace_ids)).encode()).digest()
        return "A" + base64.urlsafe_b64encode(digest).decode()[:22]

    def _usage_headers(
        self, request: httpx.Request, pct: float, regain_minutes: int = 0
    ) -> dict[str, str]:
        match = re.search(r"/act_(\d+)", request.url.path)
        business_id = match.group(1) if match else self._accounts()[0]["account_id"]
        usage = {"call_count": pct, "total_cputime": pct * 0.6, "total_time": pct * 0.8}
        buc = [{"type": "ads_insights", **usage, "estimated_time_to_regain_access": regain_minutes}]
        account_usage = {"acc_id_util_pct": pct, "reset_time_duration": regain_minutes * 60}
        return {
            "x-business-use-case-usage": json.dumps({business_id: buc}),
            "x-app-usage": json.dumps(usage),
            "x-ad-account-usage": json.dumps(account_usage),
        }

    # ---- routing ------------------------------------------------------------------

    def route(self, request: httpx.Request) -> httpx.Response:
        match = _VERSIONED.match(request.url.path)
        try:
            if match is None:
                raise GraphError(f"Unknown path components: {request.url.path}", 2500)
            body = self._dispatch(request, match.group(1), _params_of(request))
        except GraphError as exc:
            return self._error(400, exc)
        return json_response(200, body, self._usage_headers(request, self.usage_percent))

    def _dispatch(self, request: httpx.Request, path: str, params: dict[str, str]) -> Any:
        method = request.method
        if method == "GET" and path == "/me/adaccounts":
            return self._page(request, [self._account_view(a, params) for a in self._accounts()])
        if method == "GET" and (m := _ACCOUNT.match(path)):
            return self._account_view(self._account(m.group(1)), params)
        if m := _ACCOUNT_INSIGHTS.match(path):
            query = self._insights_query(self._account(m.group(1))["account_id"], params)
            if method == "POST":
                return {"report_run_id": self._start_job(query)}
            if method == "GET":
                return self._page(request, self._insights_rows(query))
        if method == "GET" and (m := _REPORT_RUN.match(path)):
            job = self._job(m.group(1))
            if m.group(2):
                return self._page(request, self._job_rows(job))
            return self._poll(job)
        raise _unsupported(method, path)

    # ---- accounts -----------------------------------------------------------------

    def _accounts(self) -> list[dict[str, Any]]:
        accounts = self.world.ad_accounts
        meta = accounts[accounts["platform"] == "meta"]
        return [
            {
                "id": f"act_{a.account_id}",
                "account_id": a.account_id,
                "name": a.account_name,
                "currency": a.currency,
                "timezone_name": a.timezone,
                "account_status": 1,
            }
            for a in meta.itertuples()
        ]

    def _account(self, account_id: str) -> dict[str, Any]:
        for account in self._accounts():
            if account["account_id"] == account_id:
                return account
        raise _unsupported("GET", f"/act_{account_id}")

    @staticmethod
    def _account_view(account: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        wanted = [f for f in params.get("fields", "id").split(",") if f]
        unknown = [f for f in wanted if f not in ACCOUNT_FIELDS]
        if unknown:
            message = f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type"
            raise GraphError(f"{message} (AdAccount)")
        return {"id": account["id"], **{f: account[f] for f in wanted}}

    # ---- insights -----------------------------------------------------------------

    def _insights_query(self, account_id: str, params: dict[str, str]) -> InsightsQuery:
        unknown = sorted(set(params) - INSIGHTS_PARAMS)
        if unknown:
            raise GraphError(f"(#100) Unsupported parameter for the sandbox: {unknown[0]}")
        if params.get("level", "campaign") != "campaign":
            raise GraphError("(#100) The sandbox serves level=campaign only")
        if params.get("time_increment", "1") != "1":
            raise GraphError("(#100) The sandbox serves time_increment=1 only")
        since, until = _time_range(params.get("time_range"))
        fields = tuple(f for f in params.get("fields", "impressions,spend").split(",") if f)
        bad = [f for f in fields if f not in INSIGHTS_FIELDS]
        if bad:
            raise GraphError(
                f"(#100) {bad[0]} is not valid for fields param. please check "
                "https://developers.facebook.com/docs/marketing-api/reference/ads-insights/ "
                "for all valid values"
            )
        breakdowns = tuple(b for b in params.get("breakdowns", "").split(",") if b)
        if any(b != "region" for b in breakdowns):
            raise GraphError(f"(#100) breakdowns[0] must be one of: region (got {breakdowns})")
        windows = _list_param(params.get("action_attribution_windows", '["7d_click","1d_view"]'))
        bad = [w for w in windows if w not in WINDOW_SHARES]
        if bad:
            allowed = ", ".join(WINDOW_SHARES)
            raise GraphError(f"(#100) action_attribution_windows must be among: {allowed}")
        return InsightsQuery(account_id, since, until, fields, tuple(windows), breakdowns)

    def _insights_rows(self, query: InsightsQuery) -> list[dict[str, Any]]:
        key = query.cache_key()
        if key not in self._cache:
            self._cache[key] = self._build_rows(query)
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return self._cache[key]

    def _build_rows(self, query: InsightsQuery) -> list[dict[str, Any]]:
        report = self._delivery(query)
        if report.empty:
            return []
        keys = ["date", "campaign_id", "campaign_name"]
        if query.breakdowns:
            keys.append("region_name")
        sums = ["spend", "impressions", "clicks", "conversions", "conversion_value"]
        grouped = report.groupby(keys, sort=True, as_index=False)[sums].sum()
        account = self._account(query.account_id)
        return [self._row(rec, account, query) for rec in grouped.to_dict("records")]

    def _delivery(self, query: InsightsQuery) -> pd.DataFrame:
        last = min(query.until, self.as_of.date())
        frames = []
        for day in daterange(query.since, last):
            report = self.world.ad_report(day)
            frames.append(report[report["account_id"] == query.account_id])
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _row(
        self, rec: dict[Any, Any], account: dict[str, Any], query: InsightsQuery
    ) -> dict[str, Any]:
        day: date = rec["date"]
        age = (self.as_of.date() - day).days
        maturity = self.world.conversion_maturity(age_days=age, window_days=MATURITY_WINDOW_DAYS)
        purchases = round(rec["conversions"] * maturity)
        value = round(rec["conversion_value"] * maturity, 2)
        values: dict[str, Any] = {
            "account_id": account["account_id"],
            "account_name": account["name"],
            "account_currency": account["currency"],
            "campaign_id": rec["campaign_id"],
            "campaign_name": rec["campaign_name"],
            "impressions": str(int(rec["impressions"])),
            "clicks": str(int(rec["clicks"])),
            "spend": f"{rec['spend']:.2f}",
            "actions": _actions(rec["clicks"], purchases, query.windows),
            "action_values": _action_values(value, query.windows),
        }
        row = {f: values[f] for f in query.fields if f in values and values[f] != []}
        row["date_start"] = row["date_stop"] = day.isoformat()
        if query.breakdowns:
            row["region"] = rec["region_name"]
        return row

    # ---- async report runs --------------------------------------------------------

    def _start_job(self, query: InsightsQuery) -> str:
        run_id = str(next(self._job_ids))
        fails = self.fail_jobs > 0
        self.fail_jobs -= int(fails)
        self.jobs[run_id] = ReportRun(run_id, query, fails)
        return run_id

    def _job(self, run_id: str) -> ReportRun:
        job = self.jobs.get(run_id)
        if job is None:
            raise _unsupported("GET", f"/{run_id}")
        return job

    def _poll(self, job: ReportRun) -> dict[str, Any]:
        job.polls += 1
        done = job.polls >= self.polls_until_complete
        pct = 100 if done else int(100 * job.polls / self.polls_until_complete)
        if done:
            status = "Job Failed" if job.fails else "Job Completed"
        else:
            status = "Job Not Started" if job.polls == 1 and pct < 50 else "Job Running"
            pct = 0 if status == "Job Not Started" else pct
        body: dict[str, Any] = {
            "id": job.run_id,
            "account_id": job.query.account_id,
            "async_status": status,
            "async_percent_completion": pct,
            "date_start": job.query.since.isoformat(),
            "date_stop": job.query.until.isoformat(),
            "is_running": not done,
            "time_ref": int(self.as_of.timestamp()),
        }
        if done and not job.fails:
            body["time_completed"] = int(self.as_of.timestamp()) + 5
        return body

    def _job_rows(self, job: ReportRun) -> list[dict[str, Any]]:
        if job.polls < self.polls_until_complete or job.fails:
            raise GraphError(f"(#100) Report run {job.run_id} has no results: it is not complete")
        return self._insights_rows(job.query)

    # ---- paging -------------------------------------------------------------------

    def _page(self, request: httpx.Request, rows: list[dict[str, Any]]) -> dict[str, Any]:
        params = _params_of(request)
        limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _decode_cursor(params["after"]) if "after" in params else 0
        page = rows[offset : offset + limit]
        if not page:
            return {"data": []}
        cursors = {"before": _encode_cursor(offset), "after": _encode_cursor(offset + len(page))}
        body: dict[str, Any] = {"data": page, "paging": {"cursors": cursors}}
        if offset + len(page) < len(rows):
            body["paging"]["next"] = _next_link(request, cursors["after"])
        return body


# ---- helpers ------------------------------------------------------------------------


def _token_of(request: httpx.Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return _params_of(request).get("access_token")


def _params_of(request: httpx.Request) -> dict[str, str]:
    """Query parameters, overlaid with a form or JSON body (POST may carry either)."""
    params = dict(request.url.params.items())
    content = request.content
    if not content:
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        body = json.loads(content)
        params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
    else:
        params.update(dict(parse_qsl(content.decode())))
    return params


def _unsupported(method: str, path: str) -> GraphError:
    object_id = path.strip("/").split("/")[0]
    verb = "post" if method == "POST" else "get"
    return GraphError(
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        100,
        subcode=33,
        kind="GraphMethodException",
    )


def _time_range(raw: str | None) -> tuple[date, date]:
    try:
        value = json.loads(raw or "")
        since, until = date.fromisoformat(value["since"]), date.fromisoformat(value["until"])
    except (ValueError, KeyError, TypeError):
        raise GraphError(
            "(#100) Param time_range must be a JSON object with since and until (YYYY-MM-DD)"
        ) from None
    if since > until:
        raise GraphError("(#100) time_range: since must be on or before until")
    return since, until


def _list_param(raw: str) -> list[str]:
    try:
        value = json.loads(raw)
    except ValueError:
        return [v.strip() for v in raw.split(",") if v.strip()]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(params.get(name, default))
    except ValueError:
        raise GraphError(f"(#100) Param {name} must be an integer") from None
    return max(low, min(high, value))


def _split(total: float, windows: tuple[str, ...], integer: bool) -> dict[str, str]:
    """`value` plus one entry per requested window, as strings."""
    out = {"value": str(int(total)) if integer else f"{total:.2f}"}
    for window in windows:
        part = total * WINDOW_SHARES[window]
        out[window] = str(round(part)) if integer else f"{round(part, 2):.2f}"
    if integer and "7d_click" in windows and "1d_view" in windows:
        out["1d_view"] = str(int(total) - int(out["7d_click"]))  # the default setting adds up
    if not integer and "7d_click" in windows and "1d_view" in windows:
        out["1d_view"] = f"{round(total - float(out['7d_click']), 2):.2f}"
    return out


def _actions(clicks: float, purchases: int, windows: tuple[str, ...]) -> list[dict[str, str]]:
    link_clicks = round(clicks * LINK_CLICK_SHARE)
    carts = round(purchases * ADD_TO_CART_PER_PURCHASE)
    out: list[dict[str, str]] = []
    if link_clicks:
        click_windows = {w: str(link_clicks) for w in windows if w.endswith("_click")}
        out.append({"action_type": "link_click", "value": str(link_clicks), **click_windows})
    if carts:
        cart = _split(carts, windows, integer=True)
        out.append({"action_type": "offsite_conversion.fb_pixel_add_to_cart", **cart})
    if purchases:
        split = _split(purchases, windows, integer=True)
        out.append({"action_type": "offsite_conversion.fb_pixel_purchase", **split})
        out.append({"action_type": "omni_purchase", **split})
    return out


def _action_values(value: float, windows: tuple[str, ...]) -> list[dict[str, str]]:
    if value <= 0:
        return []
    split = _split(value, windows, integer=False)
    return [
        {"action_type": "offsite_conversion.fb_pixel_purchase", **split},
        {"action_type": "omni_purchase", **split},
    ]


def _encode_cursor(offset: int) -> str:
    # Meta's cursors are base64 with each "=" pad spelled "ZD" ("MAZDZD" is offset 0).
    return base64.b64encode(str(offset).encode()).decode().replace("=", "ZD")


def _decode_cursor(cursor: str) -> int:
    for pads in (2, 1, 0):
        stem = cursor[: len(cursor) - 2 * pads] if pads else cursor
        if pads and not cursor.endswith("ZD" * pads):
            continue
        try:
            text = base64.b64decode(stem + "=" * pads, validate=True).decode()
        except ValueError:
            continue
        if text.isdigit():
            return int(text)
    raise GraphError("(#100) Invalid cursor: after")


def _next_link(request: httpx.Request, after: str) -> str:
    """The same call with the next cursor; `access_token` stays in if the caller sent it so."""
    query = {k: v for k, v in request.url.params.items() if k != "after"}
    query["after"] = after
    return f"{base_url_of(request)}{request.url.path}?{urlencode(query)}"
