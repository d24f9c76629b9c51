"""A Spotify Web API client that works under the 2026 rules.

- Client Credentials tokens, cached and renewed a minute before they expire (and once more if
  the API answers 401 anyway).
- 429: waits `Retry-After` seconds, within a bounded total wait per client; a quota 429
  (`QUOTA_EXCEEDED`) stops at once with a message that says so. 5xx, timeouts and refused
  connections are retried with exponential backoff.
- Paging objects are followed through `next`.
- Every request is counted by endpoint and outcome (`stats`), for the run's metadata.
- Two capability levels: `extended` (new-releases and the batch gets) and `development` (search
  `tag:new`, single gets, search pages of at most 10). `auto` starts extended and falls back,
  for the rest of the client's life, when an extended endpoint answers that the app may not use it.

The client secret and the tokens never appear in a message, a log line or `repr`.
"""

from __future__ import annotations

import base64
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import requests

API_URL = "https://api.spotify.com/v1"
TOKEN_URL = "https://accounts.spotify.com/api/token"
RENEW_BEFORE_SECONDS = 60
SEARCH_LIMIT_DEVELOPMENT = 10  # Development Mode's maximum page size for search (2026)
SEARCH_MAX_OFFSET = 1000
MAX_RATE_LIMITED = 20  # 429s in a row for one request before giving up


class Capability(StrEnum):
    AUTO = "auto"
    EXTENDED = "extended"
    DEVELOPMENT = "development"


class SpotifyError(RuntimeError):
    """The API could not give what was asked; the message says what and what to do."""


class QuotaExceeded(SpotifyError):
    pass


class EndpointUnavailable(SpotifyError):
    """The app may not use this endpoint (Development Mode since 2026)."""


@dataclass
class Retry:
    attempts: int = 5  # per request, for 5xx and network errors
    backoff_seconds: float = 0.5  # doubled after each failed attempt
    max_total_wait_seconds: float = 120.0  # all waits of one client together (429 and backoff)
    timeout_seconds: float = 30.0


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass
class SpotifyClient:
    client_id: str
    client_secret: str = field(repr=False)
    capability: Capability = Capability.AUTO
    api_url: str = API_URL
    token_url: str = TOKEN_URL
    retry: Retry = field(default_factory=Retry)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    stats: Counter = field(default_factory=Counter)
    waited_seconds: float = 0.0
    fell_back: bool = False
    # Called with (path or URL, params, body) for every successful GET: raw responses kept.
    on_response: Callable[[str, dict, dict], None] | None = field(default=None, repr=False)
    _token: _Token | None = field(default=None, repr=False)
    _http: requests.Session = field(default_factory=requests.Session, repr=False)

    # -- tokens -----------------------------------------------------------------------------

    def _access_token(self, renew: bool = False) -> str:
        if renew or self._token is None or self.clock() >= self._token.expires_at:
            self._token = self._fetch_token()
        return self._token.value

    def _fetch_token(self) -> _Token:
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        response = self._send(
            "token",
            "POST",
            self.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        if response.status_code in (400, 401):
            raise SpotifyError(
                f"Spotify refused the client credentials (HTTP {response.status_code}, "
                f"{_error_text(response)}); check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET"
            )
        _raise_for_status(response, "token")
        body = response.json()
        lifetime = float(body.get("expires_in", 3600))
        return _Token(body["access_token"], self.clock() + lifetime - RENEW_BEFORE_SECONDS)

    # -- requests ---------------------------------------------------------------------------

    def get(self, path_or_url: str, params: dict[str, Any] | None = None) -> dict:
        """GET an API path (`/albums/{id}`) or a full `next` URL, with the module's retry rules."""
        url = path_or_url if "://" in path_or_url else f"{self.api_url}{path_or_url}"
        endpoint = _endpoint(url, self.api_url)
        renewed = False
        while True:
            headers = {"Authorization": f"Bearer {self._access_token()}"}
            response = self._send(endpoint, "GET", url, params=params, headers=headers)
            if response.status_code == 401 and not renewed:  # expired early or revoked
                self._access_token(renew=True)
                renewed = True
                continue
            if response.status_code == 403:  # what Development Mode answers for a closed endpoint
                raise EndpointUnavailable(
                    f"Spotify answered HTTP {response.status_code} for {endpoint}: "
                    f"{_error_text(response)}"
                )
            _raise_for_status(response, endpoint)
            body = response.json()
            if self.on_response is not None:
                self.on_response(path_or_url, dict(params or {}), body)
            return body

    def _send(self, endpoint: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        failures = limited = 0  # 5xx / network failures, and 429s, of this request
        while True:
            try:
                response = self._http.request(
                    method, url, timeout=self.retry.timeout_seconds, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                failures += 1
                self.stats[f"{endpoint} {type(error).__name__}"] += 1
                if failures >= self.retry.attempts:
                    raise SpotifyError(
                        f"Spotify {endpoint}: {type(error).__name__} on all {failures} attempts "
                        f"({urlsplit(url).netloc} unreachable?)"
                    ) from None
                self._wait(self.retry.backoff_seconds * 2 ** (failures - 1), endpoint)
                continue
            self.stats[f"{endpoint} {response.status_code}"] += 1
            if response.status_code == 429:
                if _reason(response) == "QUOTA_EXCEEDED":
                    raise QuotaExceeded(
                        f"Spotify {endpoint}: the app's quota is exhausted (429 QUOTA_EXCEEDED); "
                        "runs resume when Spotify restores it, or apply for extended quota"
                    )
                limited += 1
                if limited > MAX_RATE_LIMITED:
                    raise SpotifyError(
                        f"Spotify {endpoint}: still rate limited after {MAX_RATE_LIMITED} waits; "
                        "try again later"
                    )
                self._wait(_retry_after(response), endpoint)
                continue
            if response.status_code >= 500:
                failures += 1
                if failures < self.retry.attempts:
                    self._wait(self.retry.backoff_seconds * 2 ** (failures - 1), endpoint)
                    continue
            return response

    def _wait(self, seconds: float, endpoint: str) -> None:
        if self.waited_seconds + seconds > self.retry.max_total_wait_seconds:
            raise SpotifyError(
                f"Spotify {endpoint}: rate limited or failing beyond the allowed total wait of "
                f"{self.retry.max_total_wait_seconds:g} s (already waited "
                f"{self.waited_seconds:g} s, next wait {seconds:g} s); try again later"
            )
        self.waited_seconds += seconds
        self.sleep(seconds)

    def pages(
        self,
        path: str,
        params: dict[str, Any],
        key: str | None = None,
        max_offset: int | None = None,
    ) -> Iterator[dict]:
        """The items of a paging object (under `key` for search answers), page by page through
        `next`, stopping before `max_offset` (search's limit)."""
        url: str | None = path
        query: dict[str, Any] | None = params
        while url:
            if "://" in url and urlsplit(url).netloc != urlsplit(self.api_url).netloc:
                raise SpotifyError(
                    f"Spotify paging: `next` points outside the API ({urlsplit(url).netloc}); "
                    "not followed with the token"
                )
            body = self.get(url, query)
            page = body[key] if key else body
            yield from page.get("items") or []
            url, query = page.get("next"), None  # `next` carries the query
            end = int(page.get("offset") or 0) + int(page.get("limit") or 0)
            if max_offset is not None and end >= max_offset:
                break

    # -- capability -------------------------------------------------------------------------

    @property
    def extended(self) -> bool:
        return self.capability is Capability.EXTENDED or (
            self.capability is Capability.AUTO and not self.fell_back
        )

    def either(self, extended: Callable[[], Any], development: Callable[[], Any]) -> Any:
        """Use the extended endpoint when the app may; fall back (for good) if it may not."""
        if self.extended:
            try:
                return extended()
            except EndpointUnavailable:
                if self.capability is Capability.EXTENDED:
                    raise
                self.fell_back = True
                self.stats["fallbacks to development mode"] += 1
        return development()


def _endpoint(url: str, api_url: str) -> str:
    """`/albums/{id}` for `.../v1/albums/4aawyAB9vmqN3uQ7FjRGTy`: counted without ids."""
    path = urlsplit(url).path
    base = urlsplit(api_url).path.rstrip("/")
    parts = path[len(base) :].strip("/").split("/") if path.startswith(base) else [path]
    return "/" + "/".join("{id}" if len(p) == 22 and p.isalnum() else p for p in parts)


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(response: requests.Response) -> str | None:
    error = _json(response).get("error")
    return error.get("reason") if isinstance(error, dict) else None


def _error_text(response: requests.Response) -> str:
    error = _json(response).get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("reason") or "no message")
    if isinstance(error, str):  # the accounts service answers {"error": "invalid_client", ...}
        return str(_json(response).get("error_description") or error)
    return "no message"


def _retry_after(response: requests.Response) -> float:
    """Seconds to wait: the header's value, at least 1 s (0, negative, NaN or junk mean 1 s,
    so a misbehaving server cannot make the client spin)."""
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        return 1.0
    return seconds if math.isfinite(seconds) and seconds >= 1 else 1.0


def _raise_for_status(response: requests.Response, endpoint: str) -> None:
    if response.status_code >= 400:
        raise SpotifyError(
            f"Spotify {endpoint}: HTTP {response.status_code} ({_error_text(response)})"
        )
