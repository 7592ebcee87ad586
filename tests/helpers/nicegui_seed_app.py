"""An app integrated the way the IDE's integration document does it.

``init_usage_tracker`` before ``ui.run``, tracking calls from the page function
and a disconnect handler, no explicit start or stop. Run as a script:
``python nicegui_seed_app.py PORT`` with the ``usage_tracking`` section as JSON
in ``SEED_USAGE_TRACKING``. After the tracker's drain at shutdown, it prints
``STATS {...}`` with the tracker's final stats.
"""

from __future__ import annotations

import json
import os
import sys

from nicegui import app, context, ui

from mbasic_tracking import get_usage_tracker, init_usage_tracker

RUNS_PER_PAGE = 5


def start_web_ui(port: int) -> None:
    init_usage_tracker(json.loads(os.environ["SEED_USAGE_TRACKING"]))
    sys.stderr.write("Usage tracking enabled\n")

    @ui.page("/")
    def main_page() -> None:
        tracker = get_usage_tracker()
        session_id = context.client.id
        if tracker:
            request = context.client.request
            user_agent = request.headers.get("user-agent")
            ip = request.client.host if request.client else None
            tracker.start_ide_session(session_id, user_agent, ip)
            for run in range(RUNS_PER_PAGE):
                tracker.track_program_execution(
                    session_id=session_id,
                    program_lines=10,
                    execution_time_ms=run,
                    lines_executed=100,
                    success=True,
                    error_message=None,
                )

        def save_on_disconnect() -> None:
            tracker = get_usage_tracker()
            if tracker:
                tracker.end_ide_session(session_id)

        context.client.on_disconnect(save_on_disconnect)
        ui.label(f"session {session_id}")

    @app.get("/ready")
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    def report() -> None:
        tracker = get_usage_tracker()
        stats = tracker.stats() if tracker else {}
        print("STATS " + json.dumps(stats), flush=True)

    app.on_shutdown(report)  # registered after init: runs after the drain

    ui.run(port=port, reload=False, show=False, show_welcome_message=False)


if __name__ in {"__main__", "__mp_main__"}:
    start_web_ui(int(sys.argv[1]))
