"""Prometheus metrics for a tracker, in a registry of their own.

Counters and gauges are read from ``tracker.stats()`` when Prometheus scrapes,
so they cost nothing between scrapes. Batch sizes and flush latency are
histograms fed by the writer after each batch lands.

    metrics = TrackerMetrics(tracker)
    text = metrics.render()  # Prometheus text exposition format

A registry of its own, rather than prometheus_client's global one, keeps two
trackers (or two tests) from colliding over metric names. Pass ``registry`` to
publish into one the app already serves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from .tracker import UsageTracker

__all__ = ["CONTENT_TYPE", "TrackerMetrics"]

CONTENT_TYPE: Final[str] = CONTENT_TYPE_LATEST

_PREFIX: Final = "mbasic_tracking"
_COUNTERS: Final = (
    ("enqueued", "events_enqueued", "Events accepted onto the queue."),
    ("written", "events_written", "Events written to the database."),
    ("dropped", "events_dropped", "Events dropped: queue full or tracker stopped."),
    ("failed", "events_failed", "Events the database refused for good."),
    ("invalid", "events_invalid", "Tracking calls lacking what a row needs."),
    (
        "abandoned",
        "events_abandoned",
        "Events still unwritten when the tracker stopped.",
    ),
    ("batches", "batches", "Batches written."),
    ("retries", "retries", "Batch attempts repeated after a transient failure."),
)
_BATCH_BUCKETS: Final = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_FLUSH_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)


class TrackerMetrics:
    """The metrics of one tracker; see the module docstring.

    The histograms need the writer's per-batch callback, and the writer is made
    when the tracker starts. Made after the start, this object hooks it at once;
    made before, call ``attach()`` after ``tracker.start()``: batches written
    before that are counted by the counters but missing from the histograms.
    ``track_nicegui_app`` does this for you. Every scrape attaches too.
    """

    def __init__(
        self, tracker: UsageTracker, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.tracker = tracker
        self.registry = (
            CollectorRegistry(auto_describe=True) if registry is None else registry
        )
        self.batch_events = Histogram(
            f"{_PREFIX}_batch_events",
            "Events per batch written.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.flush_seconds = Histogram(
            f"{_PREFIX}_flush_seconds",
            "Seconds to write one batch, retries included.",
            buckets=_FLUSH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StatsCollector(self))
        self._hooked: object | None = None
        self.attach()

    def attach(self) -> None:
        """Observe the writer's batches, if the writer exists. Idempotent."""
        writer = self.tracker._writer
        if writer is None or writer is self._hooked:
            return

        previous = writer.on_batch
        observe = self._observe

        def on_batch(events: int, seconds: float) -> None:
            observe(events, seconds)
            if previous is not None:
                previous(events, seconds)

        writer.on_batch = on_batch
        self._hooked = writer

    def render(self) -> bytes:
        """The registry in Prometheus text format (``CONTENT_TYPE``)."""
        return bytes(generate_latest(self.registry))

    def _observe(self, events: int, seconds: float) -> None:
        self.batch_events.observe(events)
        self.flush_seconds.observe(seconds)


class _StatsCollector:
    """Reads ``tracker.stats()`` at scrape time."""

    def __init__(self, metrics: TrackerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        self._metrics.attach()
        stats = self._metrics.tracker.stats()

        for key, name, help_text in _COUNTERS:
            yield CounterMetricFamily(f"{_PREFIX}_{name}", help_text, value=stats[key])

        yield _gauge(
            "queue_depth", "Events accepted and not yet written.", stats["queue_depth"]
        )
        yield _gauge("running", "1 while the writer task is alive.", stats["running"])
        yield _gauge(
            "database_up",
            "1 when the last write attempt succeeded, 0 when it failed; NaN before.",
            stats["database_ok"],
        )
        yield _gauge(
            "last_flush_timestamp_seconds",
            "Unix time of the last batch written; NaN before any.",
            stats["last_flush_at"],
            convert=lambda moment: datetime.fromisoformat(str(moment)).timestamp(),
        )


def _gauge(
    name: str,
    help_text: str,
    value: object,
    convert: Callable[[object], float] | None = None,
) -> GaugeMetricFamily:
    if convert is None:
        convert = _number
    number = math.nan if value is None else convert(value)

    return GaugeMetricFamily(f"{_PREFIX}_{name}", help_text, value=number)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan
