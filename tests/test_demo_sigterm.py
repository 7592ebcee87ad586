"""The demo app stopped with SIGTERM under load while its database hangs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from mbasic_tracking import MySQLSettings
from mbasic_tracking.events import PAGE_VISIT
from mbasic_tracking.spool import decode_records
from tests.conftest import scalar
from tests.helpers.nicegui_server import eventually, run_demo
from tests.helpers.proxy import FaultProxy

PAGE = "/sigterm-load"
GRACE_PERIOD = 45.0  # k8s/deployment.yaml's terminationGracePeriodSeconds
BEACON_PER_ADDRESS = 30  # the beacon's limit per client and minute


def _load(url: str, worker: int, stop: threading.Event, accepted: list[int]) -> None:
    """Post visits from addresses of our own, 30 per address, until told to stop."""
    for host in range(1, 255):
        transport = httpx.HTTPTransport(local_address=f"127.0.{worker + 1}.{host}")
        with httpx.Client(transport=transport, timeout=5) as client:
            for _ in range(BEACON_PER_ADDRESS):
                if stop.is_set():
                    return
                try:
                    response = client.post(url, json={"page": PAGE})
                except httpx.HTTPError:
                    return  # the server has gone away
                if response.status_code == 204:
                    accepted[worker] += 1


def _in_spool(folder: Path) -> int:
    found = 0
    for segment in folder.glob("*.spool"):
        events, _, _ = decode_records(segment.read_bytes(), 0, 10**9)
        found += sum(1 for event in events if event[0] is PAGE_VISIT)
    return found


def _landed(database: MySQLSettings) -> int:
    sql = "SELECT COUNT(*) FROM page_visits WHERE page_path = %s"
    return int(scalar(database, sql, PAGE))


def test_demo_sigterm_under_load_keeps_every_event_for_the_next_start(
    database: MySQLSettings, proxy: FaultProxy, tmp_path: Path
) -> None:
    """SIGTERM while visits pour in and the database hangs: the demo exits well
    within the grace period with every accepted event written or spooled, and
    its next start writes the spooled ones, each once."""
    url = f"mysql://{database.user}@127.0.0.1:{proxy.port}/{database.database}"
    env = {
        "MBASIC_TRACKING_DATABASE_URL": url,
        "MBASIC_TRACKING_SPOOL_DIR": str(tmp_path / "spool"),
        "MBASIC_TRACKING_STATEMENT_TIMEOUT": "1",
        "MBASIC_TRACKING_CONNECT_TIMEOUT": "1",
        "MBASIC_TRACKING_FLUSH_INTERVAL": "0.1",
    }
    arguments = ["--visit-beacon", "--drain-timeout", "3"]
    accepted = [0] * 4
    stop = threading.Event()

    with run_demo(tmp_path / "data", extra_args=arguments, env=env) as server:
        beacon = server.url + "/api/track-visit"
        workers = [
            threading.Thread(target=_load, args=(beacon, n, stop, accepted))
            for n in range(len(accepted))
        ]
        for worker in workers:
            worker.start()
        time.sleep(1.5)
        proxy.black_hole()
        time.sleep(1.0)

        began = time.monotonic()
        code = server.terminate(timeout=GRACE_PERIOD)
        took = time.monotonic() - began
        stop.set()
        for worker in workers:
            worker.join()
        output = server.output()

    assert code in (0, -15), output  # uvicorn re-raises SIGTERM after a clean exit
    assert took < GRACE_PERIOD / 3, output
    assert "in the spool" in output, output
    total = sum(accepted)
    assert total > 100, "the load reached the server"
    before = _landed(database)
    spooled = _in_spool(tmp_path / "spool")
    # A batch cut off mid-COMMIT may be both written and spooled; never neither.
    assert before + spooled >= total
    assert spooled > 0

    proxy.restore()
    with run_demo(tmp_path / "data", extra_args=arguments, env=env):
        eventually(lambda: _landed(database) == total, timeout=30)
        eventually(lambda: _in_spool(tmp_path / "spool") == 0, timeout=30)

    assert _landed(database) == total
