"""A fake Google Ads API (REST) serving the sandbox world's Google Ads account.

What it reproduces from the real API:

- the OAuth refresh-token grant (`POST /token`, on its own host in production) that
  issues short-lived access tokens, with Google's `invalid_grant`/`invalid_client` errors;
- `Authorization: Bearer`, `developer-token` and optional `login-customer-id` headers;
- `GET /vNN/customers:listAccessibleCustomers`;
- `POST /vNN/customers/{cid}/googleAds:searchStream` with a small GAQL subset
  (`SELECT … FROM campaign|geographic_view WHERE segments.date BETWEEN 'a' AND 'b'
  [AND <field> <op> <value>]…`), answered as a JSON array of batches with camelCase keys,
  int64 values as strings, doubles as numbers, zero-valued fields left out (proto3 JSON),
  rows whose selected metrics are all zero left out, `fieldMask` and `requestId`;
- errors as `{"error": {code, message, status, details: [GoogleAdsFailure]}}`, wrapped in
  an array on searchStream as the streaming endpoint sends them, with `retryDelay` on 429.

Conversions are shown as they stood at `as_of` (`SandboxWorld.conversion_maturity`, 14-day
window) and are fractional; days after `as_of.date()` have no data.
"""

from __future__ import annotations

import json
import operator
import re
import secrets
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import parse_qsl

import httpx

from cfap_orchestration.sandbox.fake_apis.base import FakeApi, Fault, json_response
from cfap_orchestration.sandbox.world import SandboxWorld, daterange

PLATFORM = "google_ads"
MATURITY_WINDOW_DAYS = 14
DEFAULT_BATCH_SIZE = 10_000
ACCESS_TOKEN_TTL = 3599
LOCATION_TYPE = "LOCATION_OF_PRESENCE"
COUNTRY_CRITERIA = {"US": 2840, "DE": 2276, "FR": 2250, "NL": 2528}

# GAQL field -> proto type ("int64" travels as a JSON string, "double" as a number).
_COMMON_FIELDS: dict[str, str] = {
    "customer.id": "int64",
    "customer.descriptive_name": "string",
    "customer.currency_code": "string",
    "customer.time_zone": "string",
    "campaign.id": "int64",
    "campaign.name": "string",
    "campaign.status": "enum",
    "segments.date": "string",
    "metrics.impressions": "int64",
    "metrics.clicks": "int64",
    "metrics.cost_micros": "int64",
    "metrics.conversions": "double",
    "metrics.conversions_value": "double",
}
_GEO_FIELDS: dict[str, str] = {
    "segments.geo_target_region": "string",
    "geographic_view.country_criterion_id": "int64",
    "geographic_view.location_type": "enum",
}
FIELD_TYPES: dict[str, str] = {**_COMMON_FIELDS, **_GEO_FIELDS}
RESOURCES: dict[str, frozenset[str]] = {
    "campaign": frozenset(_COMMON_FIELDS),
    "geographic_view": frozenset(FIELD_TYPES),
}
REQUEST_KEYS = frozenset({"query", "summaryRowSetting"})

_API_PATH = re.compile(r"^/v(?P<version>\d+)/(?P<rest>.+)$")
_STREAM_PATH = re.compile(r"^customers/(?P<cid>[^/]+)/googleAds:searchStream$")
_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<resource>[A-Za-z_]+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(
    r"""\s*(?P<field>[A-Za-z_.]+)\s*(?:
        (?P<between>BETWEEN)\s+(?P<lo>'[^']*'|\S+)\s+AND\s+(?P<hi>'[^']*'|\S+)
      | (?P<in>NOT\s+IN|IN)\s*\((?P<items>[^)]*)\)
      | (?P<op>!=|>=|<=|=|>|<)\s*(?P<value>'[^']*'|[^\s']+)
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"AND\s+", re.IGNORECASE)

_MISSING_CREDENTIAL = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_INVALID_CREDENTIAL = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class GaqlError(Exception):
    """A query the (fake) GAQL parser rejects, carried as a `queryError` code."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # BETWEEN, IN, NOT IN, =, !=, >, >=, <, <=
    values: tuple[str | float, ...]


@dataclass(frozen=True)
class GaqlQuery:
    fields: tuple[str, ...]
    resource: str
    conditions: tuple[Condition, ...]


@lru_cache(maxsize=256)
def camel(field: str) -> str:
    """`geographic_view.country_criterion_id` -> `geographicView.countryCriterionId`."""
    return ".".join(_camel_part(part) for part in field.split("."))


def _camel_part(part: str) -> str:
    head, *rest = part.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _literal(token: str) -> str | float:
    token = token.strip()
    if token.startswith("'") and token.endswith("'") and len(token) >= 2:
        return token[1:-1]
    try:
        return float(token)
    except ValueError:
        return token  # an enum constant such as ENABLED


def parse_gaql(query: str) -> GaqlQuery:
    """Parse the GAQL subset the sandbox supports, raising GaqlError like the real parser."""
    if not re.match(r"\s*SELECT\b", query, re.IGNORECASE):
        raise GaqlError("EXPECTED_SELECT", "Error in query: expected SELECT.")
    match = _QUERY.match(query)
    if match is None:
        if not re.search(r"\bFROM\b", query, re.IGNORECASE):
            raise GaqlError("EXPECTED_FROM", "Error in query: expected FROM.")
        raise GaqlError("UNEXPECTED_INPUT", "Error in query: unexpected input.")
    fields = tuple(f.strip() for f in match["fields"].split(","))
    resource = match["resource"]
    if resource not in RESOURCES:
        raise GaqlError("UNRECOGNIZED_FIELD", f"Unrecognized field in the query: '{resource}'.")
    for field in fields:
        _check_field(field, resource, "SELECT")
    conditions = _parse_where(match["where"] or "")
    for cond in conditions:
        _check_field(cond.field, resource, "WHERE")
    return GaqlQuery(fields, resource, conditions)


def _check_field(field: str, resource: str, clause: str) -> None:
    if field not in FIELD_TYPES:
        raise GaqlError("UNRECOGNIZED_FIELD", f"Unrecognized field in the query: '{field}'.")
    if field in RESOURCES[resource]:
        return
    if field.startswith("segments."):
        raise GaqlError(
            "PROHIBITED_SEGMENT_IN_SELECT_OR_WHERE_CLAUSE",
            f"Cannot select or filter on the following segments: '{field}', since the "
            f"resource in the FROM clause is '{resource}'.",
        )
    raise GaqlError(
        f"PROHIBITED_RESOURCE_TYPE_IN_{clause}_CLAUSE",
        f"Cannot {'select' if clause == 'SELECT' else 'filter on'} fields from the following "
        f"resource: '{field.split('.')[0]}', since the resource is incompatible with the "
        f"resource in FROM clause.",
    )


def _parse_where(where: str) -> tuple[Condition, ...]:
    conditions: list[Condition] = []
    pos = 0
    while pos < len(where):
        match = _CONDITION.match(where, pos)
        if match is None:
            raise GaqlError("UNEXPECTED_INPUT", f"Error in query: unexpected input {where[pos:]}.")
        conditions.append(_condition(match))
        pos = match.end()
        if pos < len(where):
            joiner = _AND.match(where, pos)
            if joiner is None:
                raise GaqlError("EXPECTED_AND", f"Error in query: expected AND at {where[pos:]}.")
            pos = joiner.end()
    return tuple(conditions)


def _condition(match: re.Match[str]) -> Condition:
    field = match["field"]
    if match["between"]:
        return Condition(field, "BETWEEN", (_literal(match["lo"]), _literal(match["hi"])))
    if match["in"]:
        items = tuple(_literal(item) for item in match["items"].split(",") if item.strip())
        if not items:
            raise GaqlError(
                "PROHIBITED_EMPTY_LIST_IN_CONDITION", "Error in query: empty list in condition."
            )
        return Condition(field, " ".join(match["in"].upper().split()), items)
    return Condition(field, match["op"], (_literal(match["value"]),))


def _as_date(value: str | float, op: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        code = "INVALID_VALUE_WITH_BETWEEN_OPERATOR" if op == "BETWEEN" else "BAD_VALUE"
        raise GaqlError(code, f"Error in query: invalid date value {value!r}.") from None


def date_range(conditions: tuple[Condition, ...]) -> tuple[date, date]:
    """The finite `segments.date` range the WHERE clause asks for."""
    lo: date | None = None
    hi: date | None = None
    for cond in conditions:
        if cond.field != "segments.date":
            continue
        days = [_as_date(v, cond.op) for v in cond.values]
        if cond.op in ("BETWEEN", "="):
            lo, hi = days[0], days[-1]
        elif cond.op in (">=", ">"):
            lo = days[0] + timedelta(days=1 if cond.op == ">" else 0)
        elif cond.op in ("<=", "<"):
            hi = days[0] - timedelta(days=1 if cond.op == "<" else 0)
        else:
            raise GaqlError("BAD_OPERATOR", f"Error in query: bad operator {cond.op}.")
    if lo is None or hi is None:
        raise GaqlError(
            "EXPECTED_FILTERS_ON_DATE_RANGE",
            "Error in query: expected a finite date range on segments.date.",
        )
    return lo, hi


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _matches(value: Any, cond: Condition) -> bool:
    """Compare as numbers against a numeric literal, else as strings (enums, names, ids)."""

    def as_literal(like: str | float) -> str | float:
        return float(value) if isinstance(like, float) else str(value)

    if cond.op in ("IN", "NOT IN"):
        hit = any(as_literal(item) == item for item in cond.values)
        return hit if cond.op == "IN" else not hit
    right = cond.values[0]
    return bool(_COMPARE[cond.op](as_literal(right), right))


class GoogleAdsFakeApi(FakeApi):
    """The Google Ads API over the sandbox world.

    `token` is the OAuth refresh token the sandbox accepts. Knobs: `batch_size` (rows per
    searchStream batch; 10,000 in the real API), `wrap_stream_errors` (searchStream errors
    as a one-element array), `manager_customer_id` (an accepted `login-customer-id`).
    """

    platform = PLATFORM
    renamed_field = ("costMicros", "costMicrosV2")

    def __init__(
        self,
        world: SandboxWorld,
        *,
        token: str = "google_ads-sandbox-token",
        as_of: datetime | None = None,
        developer_token: str = "google_ads-sandbox-developer-token",
        client_id: str = "sandbox-client.apps.googleusercontent.com",
        client_secret: str = "google_ads-sandbox-client-secret",
        manager_customer_id: str = "9182736450",
        batch_size: int = DEFAULT_BATCH_SIZE,
        wrap_stream_errors: bool = True,
    ) -> None:
        super().__init__(world, token=token, as_of=as_of)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.developer_token = developer_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.manager_customer_id = manager_customer_id
        self.batch_size = batch_size
        self.wrap_stream_errors = wrap_stream_errors
        self.issued_access_tokens: list[str] = []
        self._valid_access_tokens: set[str] = set()
        self._refresh_revoked = False
        self._atoms: dict[tuple[str, date], list[dict[str, Any]]] = {}
        self._token_lock = threading.Lock()
        accounts = world.ad_accounts
        self.accounts: dict[str, dict[Hashable, Any]] = {
            str(row["account_id"]): row
            for row in accounts[accounts["platform"] == PLATFORM].to_dict("records")
        }

    # ---- knobs for tests ----------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        """The credentials a client needs to talk to this sandbox."""
        return {
            "developer_token": self.developer_token,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.token,
        }

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (as after an hour)."""
        with self._token_lock:
            self._valid_access_tokens.clear()

    def revoke_refresh_token(self) -> None:
        with self._token_lock:
            self._refresh_revoked = True

    def token_requests(self) -> int:
        return sum(1 for r in self.requests if _is_token_path(r))

    # ---- auth ---------------------------------------------------------------------

    def is_authorized(self, request: httpx.Request) -> bool:
        if _is_token_path(request):
            return True  # the token endpoint checks its own credentials
        return (
            _bearer(request) in self._valid_access_tokens
            and request.headers.get("developer-token") == self.developer_token
        )

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        bearer = _bearer(request)
        if not bearer:
            return self._error(request, 401, "UNAUTHENTICATED", _MISSING_CREDENTIAL)
        if bearer not in self._valid_access_tokens:
            return self._error(request, 401, "UNAUTHENTICATED", _INVALID_CREDENTIAL)
        if not request.headers.get("developer-token"):
            return self._error(
                request,
                401,
                "UNAUTHENTICATED",
                _MISSING_CREDENTIAL,
                [
                    _failure(
                        "authenticationError",
                        "AUTHENTICATION_ERROR",
                        "Authentication of the request failed: the developer-token header "
                        "is missing.",
                    )
                ],
            )
        return self._error(
            request,
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            [
                _failure(
                    "authorizationError",
                    "DEVELOPER_TOKEN_NOT_APPROVED",
                    "The developer token is not approved. Non-approved developer tokens can "
                    "only be used with test accounts.",
                )
            ],
        )

    # ---- faults -------------------------------------------------------------------

    def error_response(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if _is_token_path(request):
            return _oauth_fault(fault)
        if fault.kind == "rate_limit":
            delay = f"{fault.retry_after:g}"
            return self._error(
                request,
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                [
                    _failure(
                        "quotaError",
                        "RESOURCE_EXHAUSTED",
                        f"Too many requests. Retry in {delay} seconds.",
                        {
                            "quotaErrorDetails": {
                                "rateScope": "DEVELOPER",
                                "rateName": "Number of operations for basic access",
                                "retryDelay": f"{delay}s",
                            }
                        },
                    )
                ],
            )
        if fault.kind == "server_error":
            return self._server_error(request, fault.status or 500)
        if fault.kind == "expired_token":
            return self._error(request, 401, "UNAUTHENTICATED", _INVALID_CREDENTIAL)
        if fault.kind == "bad_request":
            return self._invalid_argument(
                request, "BAD_VALUE", "Error in WHERE clause: invalid value."
            )
        return self._server_error(request, 500)

    def _server_error(self, request: httpx.Request, status: int) -> httpx.Response:
        if status == 503:
            name, code, text = (
                "UNAVAILABLE",
                "TRANSIENT_ERROR",
                "The service is currently unavailable.",
            )
        elif status == 504:
            name, code, text = "DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", "Deadline exceeded."
        else:
            name, code, text = "INTERNAL", "INTERNAL_ERROR", "An internal error has occurred."
        top = "Internal error encountered." if name == "INTERNAL" else text
        return self._error(request, status, name, top, [_failure("internalError", code, text)])

    # ---- routing ------------------------------------------------------------------

    def route(self, request: httpx.Request) -> httpx.Response:
        if _is_token_path(request):
            return self._token(request)
        match = _API_PATH.match(request.url.path)
        if match is None:
            return self._not_found(request)
        rest = match["rest"]
        if rest == "customers:listAccessibleCustomers" and request.method == "GET":
            names = [f"customers/{cid}" for cid in self.accounts]
            return json_response(200, {"resourceNames": names} if names else {})
        stream = _STREAM_PATH.match(rest)
        if stream is not None and request.method == "POST":
            return self._search_stream(request, stream["cid"])
        return self._not_found(request)

    def _not_found(self, request: httpx.Request) -> httpx.Response:
        return self._error(request, 404, "NOT_FOUND", "Method not found.")

    # ---- OAuth --------------------------------------------------------------------

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return json_response(
                405, {"error": "invalid_request", "error_description": "POST only"}
            )
        form = _form(request)
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(
                400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}"
            )
        if form.get("client_id") != self.client_id:
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("client_secret") != self.client_secret:
            return _oauth_error(401, "invalid_client", "Unauthorized")
        if form.get("refresh_token") != self.token or self._refresh_revoked:
            return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        access = "ya29.sandbox." + secrets.token_urlsafe(32)
        with self._token_lock:
            self.issued_access_tokens.append(access)
            self._valid_access_tokens.add(access)
        body = {
            "access_token": access,
            "expires_in": ACCESS_TOKEN_TTL,
            "scope": "https://www.googleapis.com/auth/adwords",
            "token_type": "Bearer",
        }
        return json_response(200, body, {"cache-control": "no-cache, no-store, max-age=0"})

    # ---- searchStream -------------------------------------------------------------

    def _search_stream(self, request: httpx.Request, cid: str) -> httpx.Response:
        denied = self._check_customer(request, cid)
        if denied is not None:
            return denied
        try:
            payload = json.loads(request.content or b"{}")
        except ValueError:
            return self._error(request, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        unknown = sorted(set(payload) - REQUEST_KEYS) if isinstance(payload, dict) else ["$"]
        if unknown:
            return self._error(
                request,
                400,
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.',
            )
        try:
            query = parse_gaql(str(payload.get("query", "")))
            rows = self._rows(cid, query, *date_range(query.conditions))
        except GaqlError as exc:
            return self._invalid_argument(request, exc.code, exc.message)
        return json_response(200, self._batches(query, rows), {"request-id": _request_id()})

    def _check_customer(self, request: httpx.Request, cid: str) -> httpx.Response | None:
        if not cid.isdigit():
            return self._error(
                request,
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                [_failure("requestError", "INVALID_CUSTOMER_ID", "Customer ID is invalid.")],
            )
        login = request.headers.get("login-customer-id")
        allowed_logins = {*self.accounts, self.manager_customer_id}
        if cid in self.accounts and (login is None or login in allowed_logins):
            return None
        return self._error(
            request,
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            [
                _failure(
                    "authorizationError",
                    "USER_PERMISSION_DENIED",
                    "User doesn't have permission to access customer. Note: If you're accessing "
                    "a client customer, the manager's customer id must be set in the "
                    "'login-customer-id' header. See "
                    "https://developers.google.com/google-ads/api/docs/concepts/call-structure#cid",
                )
            ],
        )

    def _rows(self, cid: str, query: GaqlQuery, lo: date, hi: date) -> list[dict[str, Any]]:
        """Aggregate campaign x geo x day atoms to the query's grain, then filter."""
        key_fields = self._grain(query)
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for day in daterange(lo, min(hi, self.as_of.date())):
            for atom in self._day_atoms(cid, day):
                key = tuple(atom[f] for f in key_fields)
                if key not in groups:
                    groups[key] = dict(atom)
                    continue
                row = groups[key]
                for field in FIELD_TYPES:
                    if field.startswith("metrics."):
                        row[field] += atom[field]
        metrics = [f for f in query.fields if f.startswith("metrics.")]
        rows = [r for r in groups.values() if not metrics or any(r[m] for m in metrics)]
        filters = [c for c in query.conditions if c.field != "segments.date"]
        return [r for r in rows if all(_matches(r[c.field], c) for c in filters)]

    @staticmethod
    def _grain(query: GaqlQuery) -> tuple[str, ...]:
        segments = tuple(f for f in query.fields if f.startswith("segments."))
        if query.resource == "campaign":
            return ("customer.id", "campaign.id", *segments)
        by_campaign = (
            ("campaign.id",) if any(f.startswith("campaign.") for f in query.fields) else ()
        )
        view = ("geographic_view.country_criterion_id", "geographic_view.location_type")
        return ("customer.id", *view, *by_campaign, *segments)

    def _day_atoms(self, cid: str, day: date) -> list[dict[str, Any]]:
        """One dict per campaign x geo with delivery on `day`, every field at its value."""
        cached = self._atoms.get((cid, day))
        if cached is not None:
            return cached
        report = self.world.ad_report(day)
        report = report[(report["platform"] == PLATFORM) & (report["account_id"] == cid)]
        account = self.accounts[cid]
        maturity = self.world.conversion_maturity(
            (self.as_of.date() - day).days, MATURITY_WINDOW_DAYS
        )
        atoms = [self._atom(account, row, day, maturity) for row in report.to_dict("records")]
        self._atoms[(cid, day)] = atoms
        return atoms

    def _atom(
        self, account: dict[Hashable, Any], row: dict[Hashable, Any], day: date, maturity: float
    ) -> dict[str, Any]:
        return {
            "customer.id": int(account["account_id"]),
            "customer.descriptive_name": account["account_name"],
            "customer.currency_code": account["currency"],
            "customer.time_zone": account["timezone"],
            "campaign.id": int(row["campaign_id"]),
            "campaign.name": row["campaign_name"],
            "campaign.status": self._campaign_status[row["campaign_id"]],
            "segments.date": day.isoformat(),
            "segments.geo_target_region": f"geoTargetConstants/{row['google_criterion_id']}",
            "geographic_view.country_criterion_id": self._country_criteria[row["geo_id"]],
            "geographic_view.location_type": LOCATION_TYPE,
            "metrics.impressions": int(row["impressions"]),
            "metrics.clicks": int(row["clicks"]),
            "metrics.cost_micros": round(float(row["spend"]) * 100) * 10_000,
            "metrics.conversions": float(row["conversions"]) * maturity,
            "metrics.conversions_value": float(row["conversion_value"]) * maturity,
        }

    @cached_property
    def _country_criteria(self) -> dict[str, int]:
        return {r.geo_id: COUNTRY_CRITERIA[r.country] for r in self.world.regions}

    @cached_property
    def _campaign_status(self) -> dict[str, str]:
        """Attributes show the campaign as it is at `as_of`: off-flight means PAUSED."""
        campaigns = self.world.campaigns
        active = self.world.campaign_active(self.as_of.date())
        return {
            str(cid): "ENABLED" if on else "PAUSED"
            for cid, on in zip(campaigns["campaign_id"], active, strict=True)
        }

    def _batches(self, query: GaqlQuery, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        mask = ",".join(camel(f) for f in query.fields)
        request_id = _request_id()
        results = [_serialize(row, query) for row in rows]
        if not results:
            return [{"fieldMask": mask, "requestId": request_id}]
        return [
            {
                "results": results[i : i + self.batch_size],
                "fieldMask": mask,
                "requestId": request_id,
            }
            for i in range(0, len(results), self.batch_size)
        ]

    # ---- error bodies -------------------------------------------------------------

    def _invalid_argument(self, request: httpx.Request, code: str, message: str) -> httpx.Response:
        return self._error(
            request,
            400,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
            [_failure("queryError", code, message)],
        )

    def _error(
        self,
        request: httpx.Request,
        status: int,
        name: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> httpx.Response:
        error: dict[str, Any] = {"code": status, "message": message, "status": name}
        request_id = _request_id()
        if errors:
            version = _API_PATH.match(request.url.path)
            failure_type = (
                "type.googleapis.com/google.ads.googleads."
                f"v{version['version'] if version else '18'}.errors.GoogleAdsFailure"
            )
            error["details"] = [{"@type": failure_type, "errors": errors, "requestId": request_id}]
        body: Any = {"error": error}
        if self.wrap_stream_errors and request.url.path.endswith(":searchStream"):
            body = [body]
        return json_response(status, body, {"request-id": request_id})


def _serialize(row: dict[str, Any], query: GaqlQuery) -> dict[str, Any]:
    """Nest one row as proto3 JSON: camelCase keys, int64 as strings, zero values omitted."""
    out: dict[str, dict[str, Any]] = {}
    cid, campaign_id = row["customer.id"], row["campaign.id"]
    names = {
        "customer": f"customers/{cid}",
        "campaign": f"customers/{cid}/campaigns/{campaign_id}",
        "geographicView": f"customers/{cid}/geographicViews/"
        f"{row['geographic_view.country_criterion_id']}~{row['geographic_view.location_type']}",
    }
    resource_key = camel(query.resource)
    out[resource_key] = {"resourceName": names[resource_key]}
    for field in query.fields:
        message, key = camel(field).split(".")
        target = out.setdefault(message, {})
        if message in names:
            target.setdefault("resourceName", names[message])
        value = row[field]
        if value in (0, 0.0, ""):
            continue
        target[key] = str(value) if FIELD_TYPES[field] == "int64" else value
    return out


def _failure(
    kind: str, code: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"errorCode": {kind: code}, "message": message}
    if details:
        error["details"] = details
    return error


def _oauth_error(status: int, error: str, description: str) -> httpx.Response:
    return json_response(status, {"error": error, "error_description": description})


def _oauth_fault(fault: Fault) -> httpx.Response:
    if fault.kind == "rate_limit":
        return json_response(
            429,
            {"error": "rate_limit_exceeded", "error_description": "Rate limit exceeded."},
            {"Retry-After": f"{fault.retry_after:g}"},
        )
    if fault.kind == "expired_token":
        return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
    if fault.kind == "bad_request":
        return _oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
    return _oauth_error(fault.status or 500, "internal_failure", "Backend Error")


def _is_token_path(request: httpx.Request) -> bool:
    return request.url.path.rstrip("/").endswith("/token")


def _bearer(request: httpx.Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""


def _form(request: httpx.Request) -> dict[str, str]:
    """The token request's parameters, form-encoded (as documented) or JSON."""
    text = request.content.decode("utf-8", "replace")
    if "json" in request.headers.get("content-type", ""):
        try:
            body = json.loads(text)
        except ValueError:
            return {}
        return {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    return dict(parse_qsl(text))


def _request_id() -> str:
    return secrets.token_urlsafe(16)[:22]
