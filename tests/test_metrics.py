"""Prometheus metrics of a tracker."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from mbasic_tracking import TrackingConfig, UsageTracker
from mbasic_tracking.metrics import TrackerMetrics


def samples(text: bytes) -> dict[str, float]:
    """Every sample of the exposition, by name (labels joined in)."""
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return found


def sqlite_tracker(path: Path) -> UsageTracker:
    return UsageTracker(
        TrackingConfig.from_url(f"sqlite:///{path}", batch_size=10, flush_interval=0.05)
    )


async def test_metrics_follow_the_stats_and_batches(tmp_path: Path) -> None:
    """Counters equal the tracker's stats; the histograms saw every batch."""
    tracker = sqlite_tracker(tmp_path / "u.db")
    await tracker.start()
    metrics = TrackerMetrics(tracker)
    for index in range(25):
        tracker.track_feature_usage("s", "run", {"i": index})
    tracker.track_feature_usage(None, "run")  # invalid: no session
    assert await tracker.flush(timeout=10)

    found = samples(metrics.render())
    stats = tracker.stats()
    await tracker.stop()

    assert found["mbasic_tracking_events_enqueued_total"] == 25
    assert found["mbasic_tracking_events_written_total"] == 25
    assert found["mbasic_tracking_events_invalid_total"] == 1
    assert found["mbasic_tracking_events_dropped_total"] == 0
    assert found["mbasic_tracking_batches_total"] == stats["batches"] >= 3
    assert found["mbasic_tracking_queue_depth"] == 0
    assert found["mbasic_tracking_database_up"] == 1
    assert found["mbasic_tracking_running"] == 1
    assert found["mbasic_tracking_batch_events_count"] == stats["batches"]
    assert found["mbasic_tracking_batch_events_sum"] == 25
    assert found["mbasic_tracking_flush_seconds_count"] == stats["batches"]
    assert found["mbasic_tracking_batch_events_bucket{le=10.0}"] == stats["batches"]


async def test_metrics_made_before_start_still_see_batches(tmp_path: Path) -> None:
    """The writer is made at start; ``attach()`` hooks it once it exists."""
    tracker = sqlite_tracker(tmp_path / "u.db")
    metrics = TrackerMetrics(tracker)  # no writer yet

    tracker.start_ide_session("s")  # no loop call yet: starts on flush
    await tracker.start()
    metrics.attach()
    assert await tracker.flush(timeout=10)
    found = samples(metrics.render())
    await tracker.stop()

    assert found["mbasic_tracking_batch_events_sum"] == 1


def test_two_trackers_do_not_collide(tmp_path: Path) -> None:
    """Each tracker's metrics live in their own registry."""
    first = TrackerMetrics(sqlite_tracker(tmp_path / "a.db"))
    second = TrackerMetrics(sqlite_tracker(tmp_path / "b.db"))

    assert samples(first.render())["mbasic_tracking_database_up"] != 1
    assert "mbasic_tracking_events_enqueued_total" in samples(second.render())
