"""Purge: raw rows of old days deleted in chunks, only once they are rolled up."""

from __future__ import annotations

import asyncio
import logging

import pytest
from typer.testing import CliRunner

from mbasic_tracking import MySQLSettings
from mbasic_tracking.cli import app
from mbasic_tracking.retention import NotRolledUpError, purge
from mbasic_tracking.rollup import rollup
from tests.conftest import query, scalar
from tests.helpers.usage_rows import (
    at,
    database_url,
    day,
    end,
    feature,
    run,
    start,
    visit,
    write,
)

RAW_COUNTS = (
    "SELECT (SELECT COUNT(*) FROM program_executions),"
    " (SELECT COUNT(*) FROM feature_usage), (SELECT COUNT(*) FROM page_visits),"
    " (SELECT COUNT(*) FROM ide_sessions)"
)
SUMMARY = "SELECT * FROM daily_usage_summary ORDER BY date"


async def history(settings: MySQLSettings) -> None:
    """Two old days (200 and 190 days ago) and a recent one (10 days ago)."""
    events = []
    for offset, session in ((-200, "old-a"), (-190, "old-b"), (-10, "new")):
        events += [
            start(at(offset, "09:00:00"), session),
            *(run(at(offset, f"09:0{n}:00"), session, lines=n) for n in range(1, 6)),
            feature(at(offset, "09:30:00"), session, "debugger"),
            visit(at(offset, "08:59:00")),
            end(at(offset, "10:00:00"), session),
        ]
    await write(settings, events)


async def test_old_days_are_deleted_in_chunks_and_the_summary_stays(
    database: MySQLSettings,
) -> None:
    """Rows of days before the cutoff go, a chunk at a time; recent rows and every
    daily_usage_summary row stay as they were."""
    await history(database)
    await rollup(database, since=day(-201))
    summary = query(database, SUMMARY)
    progress: list[tuple[str, int]] = []

    result = await purge(
        database,
        older_than_days=180,
        chunk_size=4,
        on_progress=lambda table, n: progress.append((table, n)),
    )

    assert result.deleted == {
        "program_executions": 10,
        "feature_usage": 2,
        "page_visits": 2,
        "ide_sessions": 2,
    }
    assert query(database, RAW_COUNTS) == [(5, 1, 1, 1)]
    assert query(database, SUMMARY) == summary
    runs = [n for table, n in progress if table == "program_executions"]
    assert runs == [4, 8, 10]


async def test_days_never_rolled_up_are_refused_and_nothing_is_deleted(
    database: MySQLSettings,
) -> None:
    """Without a summary for the old days, purge deletes nothing and names the
    first day and the rollup that fixes it."""
    await history(database)

    with pytest.raises(NotRolledUpError) as refused:
        await purge(database, older_than_days=180)

    message = str(refused.value)
    assert f"{day(-200)}: never rolled up" in message
    assert f"mbasic-tracking rollup --since {day(-200)}" in message
    assert query(database, RAW_COUNTS) == [(15, 3, 3, 3)]


async def test_a_summary_that_misses_late_rows_is_refused(
    database: MySQLSettings,
) -> None:
    """A run that arrived after the day was rolled up makes the summary disagree
    with the raw rows: purge refuses until a rollup catches up."""
    await history(database)
    await rollup(database, since=day(-201))
    await write(database, [run(at(-190, "09:45:00"), "old-b")])

    with pytest.raises(NotRolledUpError, match="5 program runs, the raw rows 6"):
        await purge(database, older_than_days=180)

    await rollup(database)
    result = await purge(database, older_than_days=180)

    assert result.deleted["program_executions"] == 11


async def test_sessions_still_open_at_the_cutoff_are_kept(
    database: MySQLSettings,
) -> None:
    """A session that started before the cutoff but ended after it keeps its row;
    one that ended before the cutoff is deleted."""
    await write(
        database,
        [
            start(at(-200), "gone"),
            end(at(-200, "13:00:00"), "gone"),
            start(at(-181, "23:00:00"), "spans"),
            end(at(-179, "01:00:00"), "spans"),
        ],
    )
    await rollup(database, since=day(-201))

    await purge(database, older_than_days=180)

    assert query(database, "SELECT session_id FROM ide_sessions") == [("spans",)]


async def test_late_rows_of_purged_days_are_deleted_with_a_warning(
    database: MySQLSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows that arrive for days already purged do not block the next purge:
    they are deleted, counted and reported in one warning."""
    await history(database)
    await rollup(database, since=day(-201))
    await purge(database, older_than_days=180)
    await write(database, [run(at(-200, "11:00:00"), "old-a"), visit(at(-195))])

    with caplog.at_level(logging.WARNING, logger="mbasic_tracking.retention"):
        result = await purge(database, older_than_days=180)

    assert result.late_rows == 2
    assert result.deleted["program_executions"] == 1
    assert "deleted 2 late rows" in caplog.text
    # The late run re-created its session, open: kept until a rollup closes it.
    assert scalar(database, "SELECT COUNT(*) FROM ide_sessions") == 2
    await rollup(database)
    await purge(database, older_than_days=180)
    assert query(database, "SELECT session_id FROM ide_sessions") == [("new",)]


async def test_rollup_never_recomputes_purged_days(database: MySQLSettings) -> None:
    """After a purge, a rollup reaching back over the purged days keeps their
    summary instead of overwriting it with zeros."""
    await history(database)
    await rollup(database, since=day(-201))
    before = query(database, SUMMARY)
    await purge(database, older_than_days=180)

    result = await rollup(database, since=day(-201))

    assert day(-200) in result.skipped_purged
    old = next(row for row in before if row[0] == day(-200))
    kept = next(row for row in query(database, SUMMARY) if row[0] == day(-200))
    assert kept[:7] == old[:7]
    assert kept[4] == 5


def test_the_command_dry_runs_refuses_and_purges(database: MySQLSettings) -> None:
    """`mbasic-tracking purge`: --dry-run counts and deletes nothing; without a
    rollup it exits 1 explaining why; after one it deletes."""
    asyncio.run(history(database))
    runner = CliRunner()
    url = database_url(database)

    refused = runner.invoke(app, ["purge", "--database-url", url])
    assert refused.exit_code == 1
    assert "not rolled up" in refused.output
    assert "never rolled up" in refused.output

    assert (
        runner.invoke(
            app, ["rollup", "--database-url", url, "--since", str(day(-201))]
        ).exit_code
        == 0
    )
    dry = runner.invoke(app, ["purge", "--database-url", url, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.output and "10 program_executions" in dry.output
    assert query(database, RAW_COUNTS) == [(15, 3, 3, 3)]

    done = runner.invoke(app, ["purge", "--database-url", url, "--older-than", "180"])
    assert done.exit_code == 0, done.output
    assert query(database, RAW_COUNTS) == [(5, 1, 1, 1)]
    assert scalar(
        database, "SELECT watermark FROM tracking_jobs WHERE job = 'purge'"
    ).date() == day(-180)
