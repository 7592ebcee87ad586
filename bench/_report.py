"""The results table, the machine description, and BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Final

from ._common import Result, scalar, server_settings

__all__ = ["format_table", "machine", "update_benchmarks_md"]

ROOT: Final = Path(__file__).resolve().parent.parent
BENCHMARKS_MD: Final = ROOT / "BENCHMARKS.md"
_HEADER: Final = ("target", "metric", "measured", "limit", "verdict", "note")

_PREAMBLE: Final = """\
# Benchmarks

Figures from `make bench` (`python -m bench`) and `make soak`
(`python -m bench.soak`), rewritten by each run. The code that produced them,
and what each figure proves, is in `bench/`. The machine is shared and noisy:
compare figures within one run (the ratios), not across runs.
"""


def format_value(value: float, unit: str) -> str:
    """A figure with a sensible number of digits, and its unit."""
    if value == int(value):
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"

    return f"{text} {unit}".strip()


def _row(result: Result) -> tuple[str, ...]:
    limit = ""
    if result.check is not None and result.limit is not None:
        limit = f"{result.check} {format_value(result.limit, result.unit)}"

    return (
        result.target,
        result.metric,
        format_value(result.value, result.unit),
        limit,
        result.verdict,
        result.note,
    )


def format_table(results: Sequence[Result]) -> str:
    """The results as an aligned plain-text table for the terminal."""
    rows = [_HEADER, *(_row(result) for result in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))

    return "\n".join(line.rstrip() for line in lines)


def format_markdown(results: Sequence[Result]) -> str:
    """The results as a Markdown table."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for result in results:
        cells = [cell.replace("|", "\\|") for cell in _row(result)]
        lines.append("| " + " | ".join(cells) + " |")

    return "\n".join(lines)


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "ram": _memory_total(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "server": _server_version(),
        "drivers": f"aiomysql {version('aiomysql')}, PyMySQL {version('PyMySQL')}",
        "os": f"{platform.system()} {platform.release()}",
        "commit": _commit(),
    }


def update_benchmarks_md(section: str, title: str, body: str) -> Path:
    """Replace ``section`` of BENCHMARKS.md with ``body``; other sections stay."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    block = f"{begin}\n## {title}\n\n{body.strip()}\n{end}"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else _PREAMBLE

    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"

    BENCHMARKS_MD.write_text(text)

    return BENCHMARKS_MD


def describe_machine(facts: dict[str, str]) -> str:
    """The machine as a Markdown list."""
    return "\n".join(f"- {key}: {value}" for key, value in facts.items())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass

    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return "unknown"

    return f"{kib / 1024 / 1024:.1f} GiB"


def _server_version() -> str:
    try:
        return str(scalar(server_settings(), "SELECT VERSION()"))
    except Exception as error:
        return f"unreachable ({type(error).__name__})"


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

    return f"{head} (with uncommitted changes)" if dirty else head
