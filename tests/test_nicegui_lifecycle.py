"""Registration of the tracker's lifecycle on NiceGUI's app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nicegui import app

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
