"""NiceGUI glue: one call wires a tracker into a NiceGUI app.

    from nicegui import app, ui
    from mbasic_tracking import init_usage_tracker
    from mbasic_tracking.nicegui import track_nicegui_app

    tracker = init_usage_tracker(config)
    tracking = track_nicegui_app(app, tracker, trusted_proxies=["10.0.0.0/8"])
    ui.run(proxy_headers=False)

What it does: the tracker starts on app startup and drains on shutdown (which is
what SIGTERM from Kubernetes triggers); a page connection is an IDE session,
ended when NiceGUI deletes the client (``reconnect_timeout`` after a disconnect
that did not come back), while a blip that reconnects in time continues it;
sessions still open at shutdown are ended before the drain, since ``on_delete``
never fires then. ``/health`` and ``/metrics`` are served, and optionally page
visits and the visit beacon (``beacon.py``).

``register_lifecycle`` alone (start and drain) is what ``init_usage_tracker``
calls when NiceGUI is importable; ``track_nicegui_app`` builds on it and never
registers the lifecycle twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Final

from .beacon import VisitBeacon, clean_referrer, make_beacon_endpoint
from .clientip import parse_networks, resolve_client_ip
from .health import health_report

if TYPE_CHECKING:
    from nicegui import App, Client
    from starlette.requests import Request

    from .metrics import TrackerMetrics
    from .tracker import UsageTracker

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "NiceGUITracking",
    "VisitBeacon",
    "register_lifecycle",
    "track_nicegui_app",
]

logger = logging.getLogger(__name__)

DEFAULT_DRAIN_TIMEOUT: Final = 25.0  # within Kubernetes' default 30 s grace period


class _Lifecycle:
    """Start and drain of one tracker, with hooks around them."""

    def __init__(self, drain_timeout: float) -> None:
        self.drain_timeout = drain_timeout
        self.after_start: list[Callable[[], None]] = []
        self.before_drain: list[Callable[[], None]] = []


_lifecycles: weakref.WeakKeyDictionary[UsageTracker, _Lifecycle] = (
    weakref.WeakKeyDictionary()
)


def register_lifecycle(
    tracker: UsageTracker, *, drain_timeout: float | None = None
) -> None:
    """Start ``tracker`` on NiceGUI's app startup and drain it on shutdown.

    Idempotent per tracker; ``drain_timeout`` (default 25 s) is the longest
    wait for the queue at shutdown. Call it before ``ui.run``. Handlers are
    zero-argument closures: NiceGUI passes the App to a one-parameter handler,
    which ``stop(timeout)`` must not receive.
    """
    _lifecycle(tracker, drain_timeout)


def _lifecycle(tracker: UsageTracker, drain_timeout: float | None) -> _Lifecycle:
    existing = _lifecycles.get(tracker)
    if existing is not None:
        # The last explicit timeout wins: init_usage_tracker registers first,
        # with the default, and track_nicegui_app may name another.
        if drain_timeout is not None:
            existing.drain_timeout = drain_timeout
        return existing

    from nicegui import app

    lifecycle = _lifecycles[tracker] = _Lifecycle(
        DEFAULT_DRAIN_TIMEOUT if drain_timeout is None else drain_timeout
    )

    async def start_tracking() -> None:
        await tracker.start()
        for hook in lifecycle.after_start:
            hook()

    async def drain_tracking() -> None:
        for hook in lifecycle.before_drain:
            try:
                hook()
            except Exception:
                logger.exception("a tracking shutdown hook failed; draining anyway")
        await tracker.stop(timeout=lifecycle.drain_timeout)

    app.on_startup(start_tracking)
    app.on_shutdown(drain_tracking)

    return lifecycle


def track_nicegui_app(
    app: App,
    tracker: UsageTracker,
    *,
    trusted_proxies: Iterable[str] = (),
    sessions: bool | Collection[str] = True,
    page_visits: bool | Collection[str] = False,
    visit_beacon: VisitBeacon | None = None,
    health_path: str | None = "/health",
    metrics_path: str | None = "/metrics",
    activity_interval: float = 60.0,
    drain_timeout: float | None = None,
) -> NiceGUITracking:
    """Wire ``tracker`` into the NiceGUI ``app``; call once, before ``ui.run``.

    Args:
        trusted_proxies: CIDRs of the proxies in front of the app whose
            ``X-Forwarded-For`` is believed (see ``clientip``). With any set,
            run uvicorn with ``proxy_headers=False``, so that the connection's
            peer reaches the app unchanged.
        sessions: record an IDE session per connected page: True for every
            page, or the paths that count (``{"/"}``).
        page_visits: record a visit when a page connects, server-side: False,
            True for every page, or the paths that count.
        visit_beacon: serve the hardened visit beacon with these settings.
        health_path: where to serve the health report (None: nowhere).
        metrics_path: where to serve Prometheus metrics (None: nowhere).
        activity_interval: seconds between ``last_activity`` updates of a
            session whose page stays connected.
        drain_timeout: the longest wait for the queue to drain at shutdown
            (None: as registered before, else DEFAULT_DRAIN_TIMEOUT).

    Raises ValueError naming the bad argument.
    """
    if not 1.0 <= activity_interval <= 86_400:
        raise ValueError(f"activity_interval: {activity_interval} not in 1..86400 s")

    tracking = NiceGUITracking(
        tracker,
        trusted_proxies=parse_networks(trusted_proxies),
        sessions=sessions,
        page_visits=page_visits,
        activity_interval=activity_interval,
    )
    lifecycle = _lifecycle(tracker, drain_timeout)
    lifecycle.after_start.append(tracking._started)
    lifecycle.before_drain.append(tracking._stopping)

    app.on_connect(tracking._connected)
    app.on_delete(tracking._deleted)

    if health_path is not None:
        app.add_route(health_path, tracking._health, methods=["GET"])
    if metrics_path is not None:
        app.add_route(metrics_path, tracking._metrics_endpoint, methods=["GET"])
    if visit_beacon is not None:
        beacon = make_beacon_endpoint(visit_beacon, tracker, tracking.client_ip)
        app.add_route(visit_beacon.path, beacon, methods=["POST", "OPTIONS"])

    return tracking


class NiceGUITracking:
    """The tracker as wired into one NiceGUI app; made by ``track_nicegui_app``.

    A session's id is the NiceGUI client's id: pass ``tracking.session_id()``
    (or ``context.client.id``) to the tracker's calls from page code.
    """

    def __init__(
        self,
        tracker: UsageTracker,
        *,
        trusted_proxies: tuple[Any, ...],
        sessions: bool | Collection[str],
        page_visits: bool | Collection[str],
        activity_interval: float,
    ) -> None:
        self.tracker = tracker
        self._trusted = trusted_proxies
        self._session_paths = sessions
        self._visit_paths = page_visits
        self._activity_interval = activity_interval

        self._seen: set[str] = set()  # clients connected at least once, not deleted
        self._open: dict[str, float] = {}  # session id -> monotonic time of last touch
        self._heartbeat: asyncio.Task[None] | None = None
        self._metrics: TrackerMetrics | None = None

    @property
    def open_sessions(self) -> int:
        """Sessions of this process that have started and not ended."""
        return len(self._open)

    @property
    def metrics(self) -> TrackerMetrics:
        """The tracker's Prometheus metrics (made on first use)."""
        if self._metrics is None:
            from .metrics import TrackerMetrics

            self._metrics = TrackerMetrics(self.tracker)
        return self._metrics

    def session_id(self, client: Client | None = None) -> str:
        """The session id of ``client`` (default: the current page's client)."""
        if client is None:
            from nicegui import context

            client = context.client
        return str(client.id)

    def client_ip(self, request: Request) -> str | None:
        """The client's address for ``request``, by the trusted-proxy rules."""
        peer = request.client.host if request.client is not None else None
        return resolve_client_ip(
            peer, request.headers.getlist("x-forwarded-for"), self._trusted
        )

    def note_activity(self, client: Client | None = None) -> None:
        """Mark the client's session active; written at most once per
        ``activity_interval``. Never raises, never blocks."""
        try:
            self._touch(self.session_id(client), force=False)
        except Exception:
            logger.debug("note_activity outside a page", exc_info=True)

    async def health(self) -> dict[str, Any]:
        """``health_report`` for this tracker, with this process's open sessions."""
        report = await health_report(self.tracker)
        report.setdefault("tracking", {})["open_sessions"] = self.open_sessions

        return report

    # -- NiceGUI handlers -----------------------------------------------------

    def _connected(self, client: Client) -> None:
        sid = str(client.id)
        if sid in self._seen:
            if sid in self._open:
                self._touch(sid, force=False)  # a reconnect continues the session
            return
        self._seen.add(sid)

        try:
            request = client.request
        except Exception:
            return  # a client without an HTTP request (auto-index, simulations)

        path = request.url.path
        wants_session = _matches(self._session_paths, path)
        wants_visit = _matches(self._visit_paths, path)
        if not (wants_session or wants_visit):
            return

        address = self.client_ip(request)
        agent = request.headers.get("user-agent")
        if wants_visit:
            referrer = clean_referrer(request.headers.get("referer"))
            self.tracker.track_page_visit(path, referrer, agent, address, sid)
        if wants_session:
            self.tracker.start_ide_session(sid, agent, address)
            self._open[sid] = time.monotonic()

    def _deleted(self, client: Client) -> None:
        sid = str(client.id)
        self._seen.discard(sid)
        if self._open.pop(sid, None) is not None:
            self.tracker.end_ide_session(sid)

    def _started(self) -> None:
        self.metrics.attach()
        self._warn_if_uvicorn_rewrites_peers()
        self._heartbeat = asyncio.get_running_loop().create_task(
            self._beat(), name="mbasic-tracking-activity"
        )

    def _stopping(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()

        for sid in list(self._open):
            self.tracker.end_ide_session(sid)
        if self._open:
            logger.info("ended %d open IDE sessions at shutdown", len(self._open))
        self._open.clear()
        self._seen.clear()

    # -- routes ---------------------------------------------------------------

    async def _health(self, request: Request) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse(await self.health(), headers={"Cache-Control": "no-store"})

    async def _metrics_endpoint(self, request: Request) -> Any:
        from starlette.responses import Response

        from .metrics import CONTENT_TYPE

        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    # -- internals ------------------------------------------------------------

    def _touch(self, sid: str, *, force: bool) -> None:
        last = self._open.get(sid)
        if last is None:
            return

        now = time.monotonic()
        if force or now - last >= self._activity_interval:
            self._open[sid] = now
            self.tracker.update_session_activity(sid)

    async def _beat(self) -> None:
        """Move ``last_activity`` of sessions whose page is still connected, so
        that a session cut off by a crash shows roughly when it was last alive."""
        from nicegui import Client

        while True:
            await asyncio.sleep(self._activity_interval)
            for sid in list(self._open):
                client = Client.instances.get(sid)
                if client is not None and client.has_socket_connection:
                    self._touch(sid, force=False)

    def _warn_if_uvicorn_rewrites_peers(self) -> None:
        if not self._trusted:
            return

        with contextlib.suppress(Exception):
            from nicegui.server import Server

            if Server.instance.config.proxy_headers:
                logger.warning(
                    "trusted_proxies is set, but uvicorn's proxy_headers is on and "
                    "rewrites the peer address first; "
                    "pass proxy_headers=False to ui.run"
                )


def _matches(paths: bool | Collection[str], path: str) -> bool:
    if isinstance(paths, bool):
        return paths

    return path in paths
