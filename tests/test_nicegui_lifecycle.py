"""Registration of the tracker's lifecycle on NiceGUI's app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nicegui import app
from starlette.requests import Request

from mbasic_tracking import TrackingConfig, init_usage_tracker
from mbasic_tracking.nicegui import register_lifecycle, track_nicegui_app

_LISTS = (
    "_startup_handlers",
    "_shutdown_handlers",
    "_connect_handlers",
    "_delete_handlers",
)


@pytest.fixture
def handler_counts() -> Iterator[dict[str, int]]:
    """NiceGUI's handler lists as they were; restored afterwards."""
    before = {name: len(getattr(app, name)) for name in _LISTS}
    yield before
    for name, count in before.items():
        del getattr(app, name)[count:]


def test_lifecycle_is_registered_once(
    tmp_path: Path, handler_counts: dict[str, int]
) -> None:
    """init_usage_tracker registers start and drain; track_nicegui_app and a
    second register_lifecycle add no second start or drain."""
    tracker = init_usage_tracker(TrackingConfig.from_url(f"sqlite:///{tmp_path}/u.db"))

    track_nicegui_app(app, tracker, health_path=None, metrics_path=None)
    register_lifecycle(tracker)

    added = {name: len(getattr(app, name)) - handler_counts[name] for name in _LISTS}
    assert added == {
        "_startup_handlers": 1,
        "_shutdown_handlers": 1,
        "_connect_handlers": 1,
        "_delete_handlers": 1,
    }


def test_bad_arguments_are_refused_naming_them(handler_counts: dict[str, int]) -> None:
    """A typo in the proxy list or the interval fails before anything is wired."""
    tracker = init_usage_tracker(TrackingConfig(enabled=False))

    with pytest.raises(ValueError, match="trusted_proxies"):
        track_nicegui_app(app, tracker, trusted_proxies=["10.0.0.0/99"])
    with pytest.raises(ValueError, match="activity_interval"):
        track_nicegui_app(app, tracker, activity_interval=0)


class _Page:
    """What the tracking glue reads of a NiceGUI client: its id and request."""

    def __init__(self, client_id: str) -> None:
        self.id = client_id
        self.request = Request(
            {
                "type": "http",
                "method": "GET",
                "scheme": "http",
                "server": ("127.0.0.1", 8080),
                "path": "/",
                "query_string": b"",
                "headers": [(b"user-agent", b"test-agent")],
                "client": ("203.0.113.9", 50000),
            }
        )


def test_activity_is_written_at_a_bounded_rate(
    tmp_path: Path, handler_counts: dict[str, int]
) -> None:
    """However often a page shows activity, last_activity is written at most
    once per activity_interval; a reconnect continues the session."""
    tracker = init_usage_tracker(
        TrackingConfig.from_url(f"sqlite:///{tmp_path}/u.db"), register_nicegui=False
    )
    tracking = track_nicegui_app(
        app, tracker, health_path=None, metrics_path=None, activity_interval=1.0
    )
    page = _Page("page-1")

    tracking._connected(page)  # type: ignore[arg-type]
    for _ in range(100):
        tracking.note_activity(page)  # type: ignore[arg-type]
    tracking._connected(page)  # type: ignore[arg-type]  # a blip that came back
    after_burst = tracker.stats()["enqueued"]

    tracking._open["page-1"] -= 1.5  # as if the interval had passed
    tracking.note_activity(page)  # type: ignore[arg-type]
    tracking.note_activity(page)  # type: ignore[arg-type]

    assert after_burst == 1  # the session start only
    assert tracker.stats()["enqueued"] == 2  # and one activity update
    assert tracking.open_sessions == 1
