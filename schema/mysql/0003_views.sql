-- Views for dashboards (Grafana, Metabase, a mysql prompt). Days are UTC days.
--
-- SQL SECURITY INVOKER: a view reads with the rights of whoever queries it, so
-- the read-only dashboard account needs SELECT on the tables, and dropping the
-- account that ran the migration never breaks a view.
--
-- daily_usage reads the rolled-up summary and stays cheap at any volume. The
-- other views group raw event rows: filter them by date, and keep long ranges to
-- daily_usage once raw rows are purged.

-- One row per UTC day, as `mbasic-tracking rollup` last computed it.
CREATE OR REPLACE SQL SECURITY INVOKER VIEW daily_usage AS
SELECT
    date,
    ide_sessions,
    unique_visitors,
    page_views,
    programs_run,
    total_lines_executed,
    avg_session_duration_seconds,
    ROUND(programs_run / NULLIF(ide_sessions, 0), 2) AS programs_per_session,
    updated_at
FROM daily_usage_summary;

-- How often each IDE feature was used per day, and by how many sessions.
CREATE OR REPLACE SQL SECURITY INVOKER VIEW feature_popularity AS
SELECT
    DATE(timestamp)            AS date,
    feature_name,
    COUNT(*)                   AS uses,
    COUNT(DISTINCT session_id) AS sessions
FROM feature_usage
GROUP BY DATE(timestamp), feature_name;

-- Program runs per day and the share that failed. `success` NULL means the IDE
-- did not say; those runs count in programs_run but not as failures.
CREATE OR REPLACE SQL SECURITY INVOKER VIEW error_rates AS
SELECT
    DATE(timestamp)                                        AS date,
    COUNT(*)                                               AS programs_run,
    COALESCE(SUM(success = 0), 0)                          AS failed,
    COALESCE(SUM(success IS NULL), 0)                      AS outcome_unknown,
    ROUND(100 * COALESCE(SUM(success = 0), 0) / COUNT(*), 2) AS error_rate_percent
FROM program_executions
GROUP BY DATE(timestamp);

-- The error messages of failed runs per day, most frequent first when ordered by
-- occurrences.
CREATE OR REPLACE SQL SECURITY INVOKER VIEW common_errors AS
SELECT
    DATE(timestamp)            AS date,
    error_message,
    COUNT(*)                   AS occurrences,
    COUNT(DISTINCT session_id) AS sessions
FROM program_executions
WHERE success = 0
GROUP BY DATE(timestamp), error_message;
