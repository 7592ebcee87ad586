"""An app integrated as the IDE's document shows, stopped with SIGTERM under load."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx

from mbasic_tracking import MySQLSettings
from tests.conftest import query, scalar
from tests.helpers.nicegui_seed_app import RUNS_PER_PAGE
from tests.helpers.nicegui_server import free_port, run_server

SEED_APP = Path(__file__).parent / "helpers" / "nicegui_seed_app.py"
SESSION = re.compile(r"session ([0-9a-f-]{36})")


async def load(url: str, stop: asyncio.Event, seen: list[str]) -> None:
    """Open the page over and over until told to stop or the server goes away."""
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            try:
                response = await client.get(url)
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                match = SESSION.search(response.text)
                assert match is not None, "the page shows its session id"
                seen.append(match.group(1))


def test_sigterm_under_load_loses_no_event(database: MySQLSettings) -> None:
    """Init before ui.run, calls in page functions, no start or stop: SIGTERM
    while pages are being opened, and every accepted event is in the database."""
    section = {
        "enabled": True,
        "mysql": {
            "host": database.host,
            "port": database.port,
            "user": database.user,
            "password": database.password,
            "database": database.database,
        },
        "flush_interval": 0.2,
    }
    port = free_port()
    env = {"SEED_USAGE_TRACKING": json.dumps(section)}
    seen: list[str] = []

    async def drive(url: str, terminate: object) -> None:
        stop = asyncio.Event()
        workers = [asyncio.create_task(load(url, stop, seen)) for _ in range(8)]
        await asyncio.sleep(2.0)
        await asyncio.to_thread(terminate)  # type: ignore[arg-type]
        stop.set()
        await asyncio.gather(*workers)

    command = [str(SEED_APP), str(port)]
    with run_server(command, port=port, env=env, ready_path="/ready") as server:
        asyncio.run(drive(server.url + "/", lambda: server.process.send_signal(15)))
        code = server.process.wait(timeout=40)
        output = server.output()

    # uvicorn re-raises SIGTERM after its graceful shutdown: -15 is a clean exit.
    assert code in (0, -15), output
    assert "STATS " in output, output

    stats = json.loads(output.split("STATS ", 1)[1].splitlines()[0])
    sessions = scalar(database, "SELECT COUNT(*) FROM ide_sessions")
    runs = scalar(database, "SELECT COUNT(*) FROM program_executions")
    short = query(
        database,
        "SELECT session_id FROM ide_sessions WHERE programs_run <> %s",
        RUNS_PER_PAGE,
    )

    assert len(seen) > 20, "the load reached the server"
    assert stats["dropped"] == stats["abandoned"] == stats["failed"] == 0
    assert stats["written"] == stats["enqueued"] == sessions * (1 + RUNS_PER_PAGE)
    assert runs == sessions * RUNS_PER_PAGE
    assert short == []
    stored = {row[0] for row in query(database, "SELECT session_id FROM ide_sessions")}
    assert set(seen) <= stored
