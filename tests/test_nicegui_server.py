"""The NiceGUI integration served for real: health, metrics, client addresses and
the visit beacon, against the demo running as a server process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.nicegui_server import (
    Server,
    eventually,
    free_port,
    run_demo,
    sqlite_rows,
)

LANDING = "https://landing.example"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo(data_dir: Path) -> Iterator[Server]:
    """The demo on SQLite, trusting 127.0.0.2 as a proxy, beacon on, raw IPs."""
    args = [
        "--trusted-proxy",
        "127.0.0.2/32",
        "--visit-beacon",
        "--beacon-origin",
        LANDING,
    ]
    env = {"MBASIC_TRACKING_IP_MODE": "raw", "MBASIC_TRACKING_FLUSH_INTERVAL": "0.05"}
    with run_demo(data_dir, extra_args=args, env=env) as server:
        yield server


def client_from(address: str) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (127.0.0.x)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=5)


def visits(data_dir: Path, page: str) -> list[tuple[object, ...]]:
    return sqlite_rows(
        data_dir / "usage.db",
        "SELECT ip_address, referrer, user_agent FROM page_visits WHERE page_path = ?",
        page,
    )


def test_health_answers_ok_with_the_database_up(demo: Server) -> None:
    """200, status ok, the database answers; the tracker's stats are there."""
    response = httpx.get(demo.url + "/health")

    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    assert report["tracking"]["database"] == "up"
    assert report["tracking"]["running"] is True


def test_health_answers_200_degraded_with_the_database_down(tmp_path: Path) -> None:
    """Tracking to a closed port: still 200 (the IDE can serve), but degraded,
    and the password in the URL appears nowhere."""
    url = f"mysql://root:pw-never-shown@127.0.0.1:{free_port()}/mbt_down"
    env = {
        "MBASIC_TRACKING_DATABASE_URL": url,
        "MBASIC_TRACKING_CONNECT_TIMEOUT": "0.5",
    }

    with run_demo(tmp_path, env=env) as server:
        response = httpx.get(server.url + "/health", timeout=10)
        page = httpx.get(server.url + "/")
        output = server.output()

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["tracking"]["database"] == "down"
    assert page.status_code == 200
    assert "pw-never-shown" not in response.text
    assert "pw-never-shown" not in output


def test_metrics_parse_as_prometheus_text(demo: Server) -> None:
    """The exposition parses and holds the tracker's counters and histograms."""
    response = httpx.get(demo.url + "/metrics")

    families = {
        family.name: family for family in text_string_to_metric_families(response.text)
    }
    assert response.headers["content-type"].startswith("text/plain")
    assert families["mbasic_tracking_events_enqueued"].type == "counter"
    assert families["mbasic_tracking_queue_depth"].type == "gauge"
    assert families["mbasic_tracking_batch_events"].type == "histogram"
    assert families["mbasic_tracking_flush_seconds"].type == "histogram"


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    demo: Server, data_dir: Path
) -> None:
    """127.0.0.1 is no trusted proxy: its header and the body's "ip" are ignored."""
    body = {
        "page": "/spoofed",
        "ip": "192.0.2.99",
        "referrer": "https://a.example/x?t=1",
    }

    with client_from("127.0.0.1") as client:
        response = client.post(
            demo.url + "/api/track-visit",
            json=body,
            headers={"X-Forwarded-For": "203.0.113.50", "User-Agent": "probe/1"},
        )

    assert response.status_code == 204
    assert eventually(lambda: visits(data_dir, "/spoofed")) == [
        ("127.0.0.1", "https://a.example/x", "probe/1")
    ]


def test_forwarded_for_from_a_trusted_proxy_is_used(
    demo: Server, data_dir: Path
) -> None:
    """127.0.0.2 is a trusted proxy: the rightmost untrusted hop is the client."""
    with client_from("127.0.0.2") as client:
        response = client.post(
            demo.url + "/api/track-visit",
            json={"page": "/proxied"},
            headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.60, 127.0.0.2"},
        )

    assert response.status_code == 204
    assert eventually(lambda: visits(data_dir, "/proxied"))[0][0] == "203.0.113.60"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"page": "https://evil.example/"}', 400),
        (b'{"page": "/ok\\n<script>"}', 400),
        (b'{"page": 42}', 400),
        (b"[1, 2]", 400),
        (b"not json", 400),
        (json.dumps({"page": "/", "pad": "x" * 5000}).encode(), 413),
    ],
)
def test_beacon_refuses_bad_bodies(demo: Server, body: bytes, status: int) -> None:
    """Only an absolute path of URL characters, in a small JSON body, is taken."""
    with client_from("127.0.0.3") as client:
        response = client.post(
            demo.url + "/api/track-visit",
            content=body,
            headers={"Content-Type": "application/json"},
        )

    assert response.status_code == status


def test_beacon_cross_origin_only_from_configured_origins(demo: Server) -> None:
    """A configured origin gets CORS headers; another origin is refused."""
    with client_from("127.0.0.4") as client:
        preflight = client.options(
            demo.url + "/api/track-visit",
            headers={"Origin": LANDING, "Access-Control-Request-Method": "POST"},
        )
        allowed = client.post(
            demo.url + "/api/track-visit",
            json={"page": "/from-landing"},
            headers={"Origin": LANDING},
        )
        foreign = client.post(
            demo.url + "/api/track-visit",
            json={"page": "/from-elsewhere"},
            headers={"Origin": "https://elsewhere.example"},
        )

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == LANDING
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == LANDING
    assert foreign.status_code == 403
    assert "access-control-allow-origin" not in foreign.headers


def test_beacon_rate_limit_per_client(demo: Server) -> None:
    """30 a minute per address: the next is 429; another address is unaffected."""
    with client_from("127.0.0.5") as client:
        codes = [
            client.post(demo.url + "/api/track-visit", json={"page": "/r"}).status_code
            for _ in range(31)
        ]
    with client_from("127.0.0.6") as other:
        fresh = other.post(demo.url + "/api/track-visit", json={"page": "/r"})

    assert codes[:30] == [204] * 30
    assert codes[30] == 429
    assert fresh.status_code == 204
