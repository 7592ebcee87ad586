"""Non-blocking usage tracking for the MBASIC web IDE.

Tracking calls put an event on a bounded in-memory queue and return within
microseconds; one asyncio task writes the queue to MySQL (or SQLite) in batches.

    from mbasic_tracking import init_usage_tracker, get_usage_tracker

    init_usage_tracker(config["usage_tracking"])
    get_usage_tracker().start_ide_session(session_id, user_agent, ip)
"""

from .config import ConfigError, MySQLSettings, TrackingConfig
from .tracker import UsageTracker, get_usage_tracker, init_usage_tracker

__all__ = [
    "ConfigError",
    "MySQLSettings",
    "TrackingConfig",
    "UsageTracker",
    "get_usage_tracker",
    "init_usage_tracker",
]

__version__ = "0.1.0"
