-- Views for dashboards; same names, columns and meanings as
-- schema/mysql/0003_views.sql. Days are UTC days.

CREATE VIEW IF NOT EXISTS daily_usage AS
SELECT
    date,
    ide_sessions,
    unique_visitors,
    page_views,
    programs_run,
    total_lines_executed,
    avg_session_duration_seconds,
    ROUND(1.0 * programs_run / NULLIF(ide_sessions, 0), 2) AS programs_per_session,
    updated_at
FROM daily_usage_summary;

CREATE VIEW IF NOT EXISTS feature_popularity AS
SELECT
    date(timestamp)            AS date,
    feature_name,
    COUNT(*)                   AS uses,
    COUNT(DISTINCT session_id) AS sessions
FROM feature_usage
GROUP BY date(timestamp), feature_name;

CREATE VIEW IF NOT EXISTS error_rates AS
SELECT
    date(timestamp)                                           AS date,
    COUNT(*)                                                  AS programs_run,
    COALESCE(SUM(success = 0), 0)                             AS failed,
    COALESCE(SUM(success IS NULL), 0)                         AS outcome_unknown,
    ROUND(100.0 * COALESCE(SUM(success = 0), 0) / COUNT(*), 2) AS error_rate_percent
FROM program_executions
GROUP BY date(timestamp);

CREATE VIEW IF NOT EXISTS common_errors AS
SELECT
    date(timestamp)            AS date,
    error_message,
    COUNT(*)                   AS occurrences,
    COUNT(DISTINCT session_id) AS sessions
FROM program_executions
WHERE success = 0
GROUP BY date(timestamp), error_message;
