"""The operators' page ``/usage``: 30 days of sessions, runs and session length.

Who may see it: with ``MBASIC_TRACKING_DASHBOARD_TOKEN`` set, whoever types the
token; unset, only a browser on this machine (a loopback peer that came through
no proxy). The figures refresh every few seconds while the page is open.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from typing import Any, Final

from nicegui import Client, ui

from ..nicegui import NiceGUITracking
from .queries import DayUsage, UsageQueries

__all__ = ["add_usage_page"]

logger = logging.getLogger(__name__)

_REFRESH_SECONDS: Final = 5.0
_COLUMNS: Final = [
    {"name": key, "label": label, "field": key, "align": "left"}
    for key, label in (
        ("session", "Session"),
        ("started", "Started (UTC)"),
        ("ended", "Ended"),
        ("seconds", "Seconds"),
        ("programs", "Programs"),
        ("lines", "Lines"),
    )
]


def add_usage_page(
    tracking: NiceGUITracking, queries: UsageQueries, *, token: str | None
) -> None:
    """Register ``/usage``; ``token`` None means localhost only."""

    @ui.page("/usage", title="MBASIC usage")
    def usage(client: Client) -> None:
        if token is None:
            if not _is_local(client):
                ui.label("The usage page is served to localhost only.")
                return
            _dashboard(queries)
            return

        holder = ui.column().classes("w-full")
        with holder:
            secret = ui.input("Dashboard token", password=True).classes("demo-token")
            message = ui.label("")

        def unlock() -> None:
            given = (secret.value or "").encode()
            if not hmac.compare_digest(given, token.encode()):
                message.set_text("Wrong token.")
                return
            holder.clear()
            with holder:
                _dashboard(queries)

        secret.on("keydown.enter", unlock)
        with holder:
            ui.button("Open", on_click=unlock)


def _is_local(client: Client) -> bool:
    request = client.request
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    if request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def _dashboard(queries: UsageQueries) -> None:
    ui.label("Usage, last 30 days (UTC)").classes("text-lg")
    with ui.row().classes("w-full no-wrap"):
        sessions = _chart("Sessions per day", "bar")
        programs = _chart("Programs run per day", "bar")
        lengths = _chart("Average session length (s)", "line")
    status = ui.label("").classes("demo-usage-status")
    table = ui.table(columns=_COLUMNS, rows=[], row_key="session").classes("w-full")

    async def refresh() -> None:
        try:
            days = await queries.daily(30)
            recent = await queries.recent_sessions(20)
        except Exception as error:
            logger.debug("usage queries failed", exc_info=True)
            status.set_text(f"No data yet ({type(error).__name__}).")
            return

        _plot(sessions, days, lambda day: day.sessions)
        _plot(programs, days, lambda day: day.programs)
        _plot(lengths, days, lambda day: day.average_seconds)
        table.rows[:] = recent
        table.update()
        total = sum(day.sessions for day in days)
        status.set_text(f"{total} sessions in 30 days; refreshed every 5 s")

    ui.timer(_REFRESH_SECONDS, refresh, immediate=True)


def _chart(title: str, kind: str) -> Any:
    return ui.echart(
        {
            "title": {"text": title, "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "axis"},
            "xAxis": {"type": "category", "data": []},
            "yAxis": {"type": "value", "minInterval": 1},
            "series": [{"type": kind, "data": [], "connectNulls": True}],
        }
    ).classes("w-1/3 h-64 demo-chart")


def _plot(chart: Any, days: list[DayUsage], pick: Callable[[DayUsage], object]) -> None:
    chart.options["xAxis"]["data"] = [day.day.isoformat()[5:] for day in days]
    chart.options["series"][0]["data"] = [pick(day) for day in days]
    chart.update()
