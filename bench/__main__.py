"""``python -m bench``: run every benchmark, print the table, update BENCHMARKS.md.

Each benchmark runs in a fresh interpreter, so that one's garbage, threads and
memory do not colour the next. The exit status is 1 when any target fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from ._common import Result
from ._report import (
    ROOT,
    describe_machine,
    format_markdown,
    format_table,
    machine,
    update_benchmarks_md,
)

BENCHMARKS: Final = ("call_cost", "throughput", "loop_lag", "memory")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave BENCHMARKS.md"
    )
    return parser


def _run_one(name: str) -> tuple[list[Result], float]:
    """Run ``bench.<name>`` in its own interpreter; (results, seconds)."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "results.json"
        began = time.perf_counter()
        finished = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", "--json", str(output)],
            cwd=ROOT,
            check=False,
        )
        elapsed = time.perf_counter() - began
        if finished.returncode != 0 or not output.exists():
            error = Result(
                name, "benchmark crashed", finished.returncode, "exit", "==", 0
            )
            return [error], elapsed

        results = [Result.from_json(item) for item in json.loads(output.read_text())]

    return results, elapsed


def main() -> None:
    """Run the benchmarks named on the command line (all by default)."""
    args = _parser().parse_args()
    facts = machine()
    results: list[Result] = []

    for name in args.only or BENCHMARKS:
        print(f"running bench.{name} ...", file=sys.stderr, flush=True)
        found, elapsed = _run_one(name)
        print(f"  done in {elapsed:.0f} s", file=sys.stderr, flush=True)
        results.extend(found)

    print(describe_machine(facts))
    print()
    print(format_table(results))

    failed = [result for result in results if result.verdict == "FAIL"]
    if not args.no_write:
        body = describe_machine(facts) + "\n\n" + format_markdown(results)
        path = update_benchmarks_md("bench", "make bench", body)
        print(f"\nwrote {path.relative_to(ROOT)}")

    print(
        f"\n{len(failed)} of {sum(r.verdict != 'info' for r in results)} checks failed"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
