"""Typed errors raised by the platform connectors.

Retryable errors (`RateLimitedError`, `TransientApiError`) are retried by the
shared HTTP client; everything else is raised at once. Messages name the
platform, the call (method and path, never the query string) and what to do;
they never contain a credential.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class: something went wrong talking to a platform API."""

    def __init__(self, platform: str, message: str) -> None:
        self.platform = platform
        super().__init__(f"[{platform}] {message}")


class AuthenticationError(ConnectorError):
    """The token is missing, expired or revoked. Not retried: refresh the credential."""


class PermissionDeniedError(ConnectorError):
    """The credential is valid but lacks access to this account or scope."""


class InvalidRequestError(ConnectorError):
    """The API rejected a parameter, query or filter. Not retried: the request is wrong."""


class SchemaDriftError(ConnectorError):
    """A field the connector relies on is missing or renamed in the response."""


class ReportJobFailedError(ConnectorError):
    """An asynchronous report job ended in a failed state or did not finish in time."""


class RetryableError(ConnectorError):
    """An error worth retrying; `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, platform: str, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(platform, message)


class RateLimitedError(RetryableError):
    """HTTP 429 or a platform throttle code."""


class TransientApiError(RetryableError):
    """5xx, timeout, dropped connection or a truncated body."""


class RetriesExhaustedError(ConnectorError):
    """A retryable error kept happening until the retry budget ran out."""
