"""The HTTP client every connector shares: timeouts, retries, pacing, redaction, counters.

Retries use tenacity. The wait before a retry is the server's own hint (Retry-After,
Google's retryDelay, Meta's usage headers) when it gives one, else exponential
backoff with jitter. Credentials are registered with a redactor, which scrubs them
from every message this module emits and from the httpx/httpcore loggers.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import httpx
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from cfap_orchestration.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitedError,
    RetriesExhaustedError,
    RetryableError,
    SchemaDriftError,
    TransientApiError,
)

logger = logging.getLogger("cfap_orchestration.connectors")

_REDACTED = "***"


class SecretRedactor(logging.Filter):
    """Scrubs registered secrets from strings and log records."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def register(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, _REDACTED)
        # Tokens that ride in query strings (Meta's paging.next carries access_token).
        return re.sub(r"(access_token|api_key|key)=[^&\s]+", r"\1=" + _REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


redactor = SecretRedactor()
for _name in ("httpx", "httpcore", "cfap_orchestration"):
    logging.getLogger(_name).addFilter(redactor)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. `max_wait` caps any single wait, including server hints."""

    max_attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 120.0
    timeout: float = 60.0
    connect_timeout: float = 10.0


@dataclass
class RequestStats:
    """Counters for one extraction, reported as Dagster materialization metadata."""

    requests: int = 0
    pages: int = 0
    retries: int = 0
    bytes_received: int = 0
    waited_seconds: float = 0.0
    retry_reasons: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "pages": self.pages,
            "retries": self.retries,
            "bytes_received": self.bytes_received,
            "waited_seconds": round(self.waited_seconds, 3),
            "retry_reasons": dict(self.retry_reasons),
        }


ErrorClassifier = Callable[[httpx.Response, Any], ConnectorError | None]
ResponseHook = Callable[[httpx.Response], float]


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def describe(request: httpx.Request) -> str:
    """`GET /v21.0/act_1/insights`: the call without host or query (where tokens hide)."""
    return f"{request.method} {request.url.path}"


def default_error(platform: str, response: httpx.Response, detail: str) -> ConnectorError | None:
    """Status-code classification used when a platform has nothing more specific."""
    call = describe(response.request)
    status = response.status_code
    if status < 400:
        return None
    text = f"{call} returned HTTP {status}: {detail}"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimitedError(platform, text, retry_after)
    if status >= 500:
        return TransientApiError(
            platform, text, parse_retry_after(response.headers.get("Retry-After"))
        )
    if status == 401:
        return AuthenticationError(platform, f"{text}. Check or refresh the access token.")
    if status == 403:
        return PermissionDeniedError(platform, f"{text}. The token lacks access to this resource.")
    return InvalidRequestError(platform, text)


class PlatformHttpClient:
    """One platform's HTTP session with retries, timeouts, pacing and counters."""

    def __init__(
        self,
        platform: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: tuple[str | None, ...] = (),
        classify_error: ErrorClassifier | None = None,
        pace: ResponseHook | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.platform = platform
        self.retry = retry or RetryPolicy()
        self.stats = RequestStats()
        self._classify = classify_error
        self._pace = pace
        self._sleep = sleep
        for secret in secrets:
            redactor.register(secret)
        self._client = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(self.retry.timeout, connect=self.retry.connect_timeout),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PlatformHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request_json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, httpx.Response]:
        """Send one request, retrying retryable failures; return (parsed JSON, response).

        The body is `json_body` (JSON) or `form` (application/x-www-form-urlencoded).
        """
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableError),
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
        )
        try:
            return retrying(self._send_once, method, url, params, json_body, form, headers)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise RetriesExhaustedError(
                self.platform,
                f"gave up after {self.retry.max_attempts} attempts; last error: {last}",
            ) from None

    def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        form: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[Any, httpx.Response]:
        request = self._client.build_request(
            method, url, params=params, json=json_body, data=form, headers=headers
        )
        self.stats.requests += 1
        try:
            response = self._client.send(request)
        except httpx.TimeoutException:
            raise TransientApiError(
                self.platform,
                f"{describe(request)} timed out after {self.retry.timeout:g}s",
            ) from None
        except httpx.TransportError as exc:
            raise TransientApiError(
                self.platform,
                f"{describe(request)} failed in transport: {type(exc).__name__}",
            ) from None
        self.stats.bytes_received += len(response.content)
        body = self._parse_body(response)
        error = self._classify(response, body) if self._classify else None
        if error is None and response.status_code >= 400:
            error = default_error(self.platform, response, _short(response.text))
        if error is not None:
            raise error
        if body is _UNPARSEABLE:
            raise TransientApiError(
                self.platform,
                f"{describe(request)} returned a truncated or malformed JSON body "
                f"({len(response.content)} bytes)",
            )
        if self._pace is not None:
            pause = self._pace(response)
            if pause > 0:
                self.stats.waited_seconds += pause
                self._sleep(min(pause, self.retry.max_wait))
        return body, response

    @staticmethod
    def _parse_body(response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return json.loads(response.content)
        except ValueError:
            return _UNPARSEABLE

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = wait_exponential_jitter(
            initial=self.retry.initial_wait,
            max=self.retry.max_wait,
            jitter=self.retry.initial_wait,
        )(state)
        hint = exc.retry_after if isinstance(exc, RetryableError) else None
        wait = hint if hint is not None else backoff
        return float(min(wait, self.retry.max_wait))

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = type(exc).__name__
        self.stats.retries += 1
        self.stats.retry_reasons[reason] = self.stats.retry_reasons.get(reason, 0) + 1
        wait = state.next_action.sleep if state.next_action else 0.0
        self.stats.waited_seconds += wait
        logger.warning(
            "%s: retrying in %.2fs after attempt %d: %s",
            self.platform,
            wait,
            state.attempt_number,
            redactor.redact(str(exc)),
        )


class PlatformClient:
    """Base of the four platform clients: counters, closing, use as a context manager."""

    _http: PlatformHttpClient

    @property
    def stats(self) -> RequestStats:
        return self._http.stats

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Unparseable:
    pass


_UNPARSEABLE = _Unparseable()


def _short(text: str, limit: int = 300) -> str:
    text = redactor.redact(text.strip())
    return text if len(text) <= limit else text[:limit] + "…"


def require_fields(
    platform: str, record: Mapping[str, Any], fields: tuple[str, ...], what: str
) -> None:
    """Raise SchemaDriftError naming the missing field(s), so a rename never becomes nulls."""
    missing = [f for f in fields if f not in record]
    if missing:
        seen = ", ".join(sorted(record)[:20])
        raise SchemaDriftError(
            platform,
            f"{what} is missing required field(s) {missing}; the API may have renamed them. "
            f"Fields present: {seen}",
        )
