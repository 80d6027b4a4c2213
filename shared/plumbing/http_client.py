"""Calling another service over HTTP: correlation id and internal token on every call, one error shape.

A 4xx answer becomes `ServiceError` carrying the callee's error code; a connection failure, a timeout or a
5xx becomes `ServiceUnavailable`, which pages turn into a French "service indisponible" message. A 5xx that
carries the usual error body keeps its code and French message on the exception: a callee that knows
why it failed (PayFiP refused, PayFiP unreachable) says it better than a generic page.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from shared.plumbing.logging import CORRELATION_HEADER, current_correlation_id, get_logger
from shared.plumbing.web import INTERNAL_TOKEN_HEADER

log = get_logger(__name__)


class ServiceError(Exception):
    def __init__(self, service: str, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{service} answered {status} {code}: {message}")
        self.service = service
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class ServiceUnavailable(Exception):
    def __init__(
        self,
        service: str,
        reason: str,
        *,
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service
        self.reason = reason
        self.status = status  # None when no answer came (timeout, connection refused)
        self.code = code
        self.message = message


async def _error_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The `{"error": {...}}` object of an answer, or {} when the body is not that shape."""
    try:
        body = await response.json(content_type=None)
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


class ServiceClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        service: str,
        base_url: str,
        internal_token: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._session = session
        self.service = service
        self._base_url = base_url.rstrip("/")
        self._token = internal_token
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {CORRELATION_HEADER: current_correlation_id()}
        if self._token:
            headers[INTERNAL_TOKEN_HEADER] = self._token
        if extra:
            headers.update(extra)
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout_seconds: float | None = None,
    ) -> Any:
        """Send a JSON request; return the decoded JSON body (None for 204). `timeout_seconds` overrides
        the client's timeout for a call known to take longer (one that waits on PayFiP)."""
        url = self._base_url + path
        timeout = self._timeout if timeout_seconds is None else aiohttp.ClientTimeout(total=timeout_seconds)
        try:
            async with self._session.request(
                method, url, json=json, params=params, headers=self._headers(headers), timeout=timeout
            ) as response:
                if response.status >= 500:
                    error = await _error_of(response)
                    raise ServiceUnavailable(
                        self.service,
                        f"HTTP {response.status}",
                        status=response.status,
                        code=str(error["code"]) if "code" in error else None,
                        message=str(error["message"]) if error.get("message") else None,
                    )
                if response.status == 204:
                    return None
                body = await response.json(content_type=None)
                if response.status >= 400:
                    error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
                    raise ServiceError(
                        self.service,
                        response.status,
                        str(error.get("code", "error")),
                        str(error.get("message", "")),
                        error.get("details"),
                    )
                return body
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning(
                "service_call_failed", callee=self.service, method=method, path=path, error=repr(error)
            )
            raise ServiceUnavailable(self.service, repr(error)) from error

    async def get(self, path: str, *, params: dict[str, str] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, json: Any = None, *, timeout_seconds: float | None = None) -> Any:
        return await self.request("POST", path, json=json, timeout_seconds=timeout_seconds)

    async def stream(self, path: str) -> aiohttp.ClientResponse:
        """A raw response for bodies to pass through (PDFs); the caller must release it."""
        try:
            response = await self._session.get(
                self._base_url + path, headers=self._headers(), timeout=self._timeout
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ServiceUnavailable(self.service, repr(error)) from error
        if response.status >= 500:
            response.release()
            raise ServiceUnavailable(self.service, f"HTTP {response.status}")
        return response
