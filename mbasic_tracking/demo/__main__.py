"""``python -m mbasic_tracking.demo``: the demo IDE on http://127.0.0.1:8080.

Tracking goes to ``MBASIC_TRACKING_DATABASE_URL`` when it is set (MySQL, whose
schema is brought up to date first), else to SQLite in ``--data-dir``.
``MBASIC_TRACKING_<SETTING>`` variables tune the tracker as usual.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from ..config import TrackingConfig
from ..migrate import apply_mysql
from ..nicegui import VisitBeacon, track_nicegui_app
from ..tracker import init_usage_tracker


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, set tracking up, and serve until stopped."""
    options = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    environ = dict(os.environ)
    if not environ.get("MBASIC_TRACKING_DATABASE_URL"):
        path = Path(options.data_dir).resolve() / "usage.db"
        environ["MBASIC_TRACKING_DATABASE_URL"] = f"sqlite:///{path}"
    config = TrackingConfig.from_env(environ)
    if config.mysql is not None:
        _migrate(config)

    from nicegui import app, ui

    from .dashboard import add_usage_page
    from .ide import add_ide_page
    from .queries import UsageQueries

    tracker = init_usage_tracker(config)
    beacon = None
    if options.visit_beacon:
        beacon = VisitBeacon(allowed_origins=tuple(options.beacon_origin))
    tracking = track_nicegui_app(
        app,
        tracker,
        trusted_proxies=options.trusted_proxy,
        sessions={"/"},
        page_visits=True,
        visit_beacon=beacon,
        activity_interval=options.activity_interval,
        drain_timeout=options.drain_timeout,
    )
    add_ide_page(tracking)
    token = os.environ.get("MBASIC_TRACKING_DASHBOARD_TOKEN") or None
    add_usage_page(tracking, UsageQueries(config), token=token)

    async def check_database() -> None:
        # Connecting now creates the SQLite tables on start, not at the first write.
        answers = await tracker.ping()
        print(f"tracking database {'answers' if answers else 'does NOT answer'}")

    app.on_startup(check_database)

    where = f"http://{options.host}:{options.port}"
    print(f"usage data goes to {config.destination}", flush=True)
    print(f"IDE at {where}/ - usage page at {where}/usage", flush=True)

    ui.run(
        host=options.host,
        port=options.port,
        title="MBASIC demo",
        reload=False,
        show=False,
        reconnect_timeout=options.reconnect_timeout,
        proxy_headers=False,
        show_welcome_message=False,
    )


def _migrate(config: TrackingConfig) -> None:
    """Bring the MySQL schema up to date; an unreachable server is reported and
    the IDE starts anyway (the tracker queues and retries meanwhile)."""
    if config.mysql is None:
        return

    try:
        applied = asyncio.run(apply_mysql(config.mysql, connect_timeout=5.0))
    except Exception as error:
        print(f"schema: cannot migrate now ({type(error).__name__}); starting anyway")
        return

    if applied:
        print(f"schema: applied {', '.join(applied)}", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mbasic_tracking.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--data-dir", default="demo-data", help="where the SQLite file goes"
    )
    parser.add_argument(
        "--reconnect-timeout",
        type=float,
        default=3.0,
        help="seconds a disconnected page may take to come back (NiceGUI's)",
    )
    parser.add_argument(
        "--activity-interval",
        type=float,
        default=60.0,
        help="seconds between last_activity updates of a connected session",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=25.0,
        help="seconds the shutdown may spend writing queued events (then: spool)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="a proxy whose X-Forwarded-For is believed (repeatable)",
    )
    parser.add_argument(
        "--visit-beacon",
        action="store_true",
        help="serve POST /api/track-visit for static pages",
    )
    parser.add_argument(
        "--beacon-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another origin allowed to post the beacon (repeatable)",
    )

    return parser


if __name__ in {"__main__", "__mp_main__"}:
    main()
