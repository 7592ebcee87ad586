"""The visit beacon: ``POST /api/track-visit`` for a static landing page.

A public endpoint that writes rows, so it is hardened rather than trusting:

- off unless the app turns it on;
- the body is read up to ``max_body_bytes`` and no further (413 beyond);
- each client address may send ``per_minute`` beacons (429 beyond), a token
  bucket that refills continuously;
- the page path must be an absolute path of URL characters, and the referrer an
  http(s) URL; their query strings and fragments are dropped before storing,
  since they may carry tokens;
- the client's address comes from the connection (through the trusted-proxy
  rules of ``clientip``), never from the body; the user agent from the header;
- a browser may post from another origin only when that origin is configured;
  requests without an ``Origin`` header (not from a browser page) are allowed and
  rate-limited like any other.

The body is JSON (``fetch``) or the same JSON sent as text (``sendBeacon``):
``{"page": "/", "referrer": "https://example.org/"}``. Other keys are ignored.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from .tracker import UsageTracker

__all__ = ["VisitBeacon", "clean_page_path", "clean_referrer", "make_beacon_endpoint"]

_PATH_CHARS: Final = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")
_MAX_PATH_CHARS: Final = 512
_MAX_REFERRER_CHARS: Final = 1024
_MAX_BUCKETS: Final = 10_000


@dataclass(frozen=True, kw_only=True)
class VisitBeacon:
    """Settings of the visit beacon (see the module docstring).

    ``allowed_origins`` lists the origins, such as ``https://mbasic.example``,
    whose pages may post from another origin; the app's own origin always may.
    """

    path: str = "/api/track-visit"
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 2048
    per_minute: int = 30

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"path: {self.path!r} must start with '/'")
        if not 64 <= self.max_body_bytes <= 65_536:
            raise ValueError(f"max_body_bytes: {self.max_body_bytes} not in 64..65536")
        if not 1 <= self.per_minute <= 10_000:
            raise ValueError(f"per_minute: {self.per_minute} not in 1..10000")
        for origin in self.allowed_origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(
                    f"allowed_origins: {origin!r} is not an origin "
                    "(scheme://host[:port], no path)"
                )


def clean_page_path(value: object) -> str | None:
    """An absolute path without query or fragment; None when it is not one."""
    if not isinstance(value, str):
        return None

    path = value.split("#", 1)[0].split("?", 1)[0]
    if len(path) > _MAX_PATH_CHARS or path.startswith("//"):
        return None
    if not _PATH_CHARS.fullmatch(path):
        return None

    return path


def clean_referrer(value: object) -> str | None:
    """An http(s) URL reduced to scheme, host and path; None otherwise.

    Credentials, query strings and fragments are dropped: they may hold secrets.
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_REFERRER_CHARS:
        return None

    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None

    if parts.scheme not in ("http", "https") or not host:
        return None
    if any(ord(char) < 33 or char == "\x7f" for char in value.strip()):
        return None

    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"

    return f"{parts.scheme}://{netloc}{parts.path or '/'}"


def make_beacon_endpoint(
    settings: VisitBeacon,
    tracker: UsageTracker,
    client_ip: Callable[[Request], str | None],
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint for ``settings.path`` (methods POST and OPTIONS)."""
    limiter = _RateLimiter(settings.per_minute)
    allowed = frozenset(origin.rstrip("/") for origin in settings.allowed_origins)

    async def track_visit(request: Request) -> Response:
        origin = request.headers.get("origin")
        cors = _cors_headers(origin, request, allowed)
        if cors is None:
            return Response(status_code=403, headers={"Vary": "Origin"})

        if request.method == "OPTIONS":
            return Response(status_code=204, headers=cors)

        address = client_ip(request)
        if not limiter.allow(address or "unknown"):
            return Response(status_code=429, headers={**cors, "Retry-After": "60"})

        body = await _read_limited(request, settings.max_body_bytes)
        if body is None:
            return Response(status_code=413, headers=cors)

        try:
            data = json.loads(body)
        except ValueError:
            return Response(status_code=400, headers=cors)
        if not isinstance(data, dict):
            return Response(status_code=400, headers=cors)

        page = clean_page_path(data.get("page"))
        if page is None:
            return Response(status_code=400, headers=cors)

        tracker.track_page_visit(
            page,
            referrer=clean_referrer(data.get("referrer")),
            user_agent=request.headers.get("user-agent"),
            ip_address=address,
        )

        return Response(status_code=204, headers=cors)

    return track_visit


def _cors_headers(
    origin: str | None, request: Request, allowed: frozenset[str]
) -> dict[str, str] | None:
    """Response headers for ``origin``; None when that origin may not post."""
    if origin is None:
        return {}

    if origin in allowed:
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }

    if urlsplit(origin).netloc == request.headers.get("host"):
        return {"Vary": "Origin"}

    return None


async def _read_limited(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None

    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None

    return bytes(body)


class _RateLimiter:
    """A token bucket per key: ``per_minute`` tokens, refilled continuously.

    The table of buckets is bounded: past ``_MAX_BUCKETS`` keys, the buckets
    that have refilled are forgotten, and if that is not enough, all are.
    """

    def __init__(self, per_minute: int) -> None:
        self._capacity = float(per_minute)
        self._refill = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - stamp) * self._refill)

        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False

        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > _MAX_BUCKETS:
            self._forget_idle(now)

        return True

    def _forget_idle(self, now: float) -> None:
        full_after = self._capacity / self._refill
        self._buckets = {
            key: (tokens, stamp)
            for key, (tokens, stamp) in self._buckets.items()
            if now - stamp < full_after
        }
        if len(self._buckets) > _MAX_BUCKETS:
            self._buckets.clear()
