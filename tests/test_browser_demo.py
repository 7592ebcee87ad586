"""The demo IDE in a real Chromium: sessions, runs and features reach the
database, reconnects keep the session, and the usage page draws its charts."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from mbasic_tracking import MySQLSettings
from tests.conftest import query
from tests.helpers.nicegui_server import Server, eventually, run_demo, sqlite_rows

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
RECONNECT_TIMEOUT = 2.0
PROGRAM = '10 FOR I = 1 TO 3\n20 PRINT "line "; I\n30 NEXT I\n'

Rows = Callable[[str], list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def sqlite_demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, Rows]]:
    """The demo on its default SQLite file, with a short reconnect timeout."""
    data_dir = tmp_path_factory.mktemp("browser-demo")
    args = ["--reconnect-timeout", str(RECONNECT_TIMEOUT)]
    env = {"MBASIC_TRACKING_FLUSH_INTERVAL": "0.05"}
    with run_demo(data_dir, extra_args=args, env=env) as server:
        yield server, lambda sql: sqlite_rows(data_dir / "usage.db", sql)


@pytest.fixture
def mysql_demo(
    mysql_server: MySQLSettings, tmp_path: Path
) -> Iterator[tuple[Server, Rows]]:
    """The demo writing to a new MySQL database, which it creates and migrates
    on start. (The ``database`` fixture runs its own event loop, which cannot
    start inside Playwright's.)"""
    fresh = dataclasses.replace(mysql_server, database=f"mbt_{secrets.token_hex(6)}")
    url = f"mysql://{fresh.user}@{fresh.host}:{fresh.port}/{fresh.database}"
    args = ["--reconnect-timeout", str(RECONNECT_TIMEOUT)]
    env = {
        "MBASIC_TRACKING_DATABASE_URL": url,
        "MBASIC_TRACKING_FLUSH_INTERVAL": "0.05",
    }
    try:
        with run_demo(tmp_path, extra_args=args, env=env) as server:
            yield server, lambda sql: query(fresh, sql)
    finally:
        query(mysql_server, f"DROP DATABASE IF EXISTS `{fresh.database}`")


def open_ide(browser: Browser, server: Server) -> Page:
    page = browser.new_page()
    page.goto(server.url + "/")
    page.locator(".demo-editor textarea").wait_for()
    return page


def run_in(page: Page, program: str) -> None:
    page.locator(".demo-editor textarea").fill(program)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("line 3").wait_for()


def session_ids(rows: Rows) -> list[str]:
    return [row[0] for row in rows("SELECT session_id FROM ide_sessions")]


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_visit_records_session_run_and_feature(
    browser: Browser, backend: str, request: pytest.FixtureRequest
) -> None:
    """Open the IDE, run a program, renumber it, close the tab: the session (with
    its end), the run and the feature use are in the database."""
    server, rows = request.getfixturevalue(f"{backend}_demo")
    before = set(session_ids(rows))

    page = open_ide(browser, server)
    run_in(page, PROGRAM)
    page.get_by_role("button", name="Renumber").click()
    new = eventually(lambda: set(session_ids(rows)) - before)
    page.close()

    (session,) = new
    ended = eventually(
        lambda: rows(
            "SELECT duration_seconds, programs_run, lines_executed, user_agent"
            f" FROM ide_sessions WHERE session_id = '{session}'"
            " AND end_time IS NOT NULL"
        ),
        timeout=RECONNECT_TIMEOUT + 10,
    )
    (duration, programs, lines, agent) = ended[0]
    assert programs == 1 and lines == 7
    assert duration is not None and duration >= 0
    assert "Chrome" in agent
    assert rows(
        "SELECT program_lines, lines_executed, success, error_message FROM"
        f" program_executions WHERE session_id = '{session}'"
    ) == [(3, 7, 1, None)]
    assert [
        row[0]
        for row in rows(
            f"SELECT feature_name FROM feature_usage WHERE session_id = '{session}'"
        )
    ] == ["renumber"]
    assert rows(
        f"SELECT page_path FROM page_visits WHERE session_id = '{session}'"
    ) == [("/",)]


def test_a_reconnect_keeps_the_session_and_closing_ends_it(
    browser: Browser, sqlite_demo: tuple[Server, Rows]
) -> None:
    """The socket drops and comes back within reconnect_timeout: one session,
    still open, and runs after the blip count for it; closing the tab ends it."""
    server, rows = sqlite_demo
    before = set(session_ids(rows))
    page = open_ide(browser, server)
    (session,) = eventually(lambda: set(session_ids(rows)) - before)

    page.evaluate("window.socket.io.engine.close()")
    page.wait_for_function("!window.socket.connected", timeout=5000)
    page.wait_for_function("window.socket.connected", timeout=10000)
    page.wait_for_timeout(RECONNECT_TIMEOUT * 1000 + 1500)
    run_in(page, PROGRAM)

    counted = eventually(
        lambda: rows(
            "SELECT programs_run, end_time FROM ide_sessions"
            f" WHERE session_id = '{session}' AND programs_run = 1"
        )
    )
    assert counted == [(1, None)]
    assert set(session_ids(rows)) - before == {session}

    page.close()
    eventually(
        lambda: rows(
            "SELECT 1 FROM ide_sessions"
            f" WHERE session_id = '{session}' AND end_time IS NOT NULL"
        ),
        timeout=RECONNECT_TIMEOUT + 10,
    )


def test_the_usage_page_draws_its_charts(
    browser: Browser, sqlite_demo: tuple[Server, Rows]
) -> None:
    """Three echarts with their canvases, and the recent sessions in the table."""
    server, rows = sqlite_demo
    ide = open_ide(browser, server)
    run_in(ide, PROGRAM)
    eventually(lambda: rows("SELECT 1 FROM program_executions"))

    page = browser.new_page()
    page.goto(server.url + "/usage")
    page.locator(".demo-chart canvas").nth(2).wait_for()
    page.get_by_text("sessions in 30 days").wait_for()

    assert page.locator(".demo-chart canvas").count() == 3
    assert page.locator("tbody tr").count() >= 1
    assert page.locator(".demo-usage-status").inner_text().split()[0] != "0"
    page.close()
    ide.close()
