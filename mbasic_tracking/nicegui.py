"""NiceGUI glue: the tracker's lifecycle on the app's startup and shutdown.

``register_lifecycle`` is what ``init_usage_tracker`` calls when NiceGUI is
importable: the writer starts on app startup and the queue is drained on app
shutdown (which is what SIGTERM from Kubernetes triggers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tracker import UsageTracker

__all__ = ["register_lifecycle"]

_registered: set[int] = set()


def register_lifecycle(tracker: UsageTracker, *, drain_timeout: float = 25.0) -> None:
    """Start ``tracker`` on NiceGUI's app startup and drain it on shutdown.

    Idempotent per tracker. Handlers are zero-argument closures: NiceGUI passes
    the App to a one-parameter handler, which ``stop(timeout)`` must not receive.
    """
    if id(tracker) in _registered:
        return
    _registered.add(id(tracker))

    from nicegui import app

    async def start_tracking() -> None:
        await tracker.start()

    async def drain_tracking() -> None:
        await tracker.stop(timeout=drain_timeout)

    app.on_startup(start_tracking)
    app.on_shutdown(drain_tracking)
