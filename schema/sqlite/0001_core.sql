-- Core usage-tracking tables for the embedded SQLite default (the demo, local runs).
-- Same tables, columns and meanings as schema/mysql/0001_core.sql. Times are stored
-- as UTC text 'YYYY-MM-DD HH:MM:SS.fff', which sorts and compares like DATETIME(3).

CREATE TABLE IF NOT EXISTS ide_sessions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id       TEXT    NOT NULL UNIQUE,
    start_time       TEXT    NOT NULL,
    last_activity    TEXT    NOT NULL,
    end_time         TEXT    NULL,
    duration_seconds INTEGER NULL,
    programs_run     INTEGER NOT NULL DEFAULT 0,
    lines_executed   INTEGER NOT NULL DEFAULT 0,
    user_agent       TEXT    NULL,
    ip_address       TEXT    NULL
);
CREATE INDEX IF NOT EXISTS ix_ide_sessions_start_time ON ide_sessions (start_time);

CREATE TABLE IF NOT EXISTS program_executions (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id          BLOB    NOT NULL UNIQUE,
    session_id        TEXT    NOT NULL,
    timestamp         TEXT    NOT NULL,
    program_lines     INTEGER NULL,
    execution_time_ms INTEGER NULL,
    lines_executed    INTEGER NULL,
    success           INTEGER NULL,
    error_message     TEXT    NULL
);
CREATE INDEX IF NOT EXISTS ix_program_executions_session
    ON program_executions (session_id, lines_executed);
CREATE INDEX IF NOT EXISTS ix_program_executions_timestamp
    ON program_executions (timestamp);

CREATE TABLE IF NOT EXISTS feature_usage (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     BLOB    NOT NULL UNIQUE,
    session_id   TEXT    NOT NULL,
    timestamp    TEXT    NOT NULL,
    feature_name TEXT    NOT NULL,
    feature_data TEXT    NULL
);
CREATE INDEX IF NOT EXISTS ix_feature_usage_session ON feature_usage (session_id);
CREATE INDEX IF NOT EXISTS ix_feature_usage_timestamp ON feature_usage (timestamp);

CREATE TABLE IF NOT EXISTS page_visits (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   BLOB    NOT NULL UNIQUE,
    timestamp  TEXT    NOT NULL,
    page_path  TEXT    NOT NULL,
    referrer   TEXT    NULL,
    user_agent TEXT    NULL,
    ip_address TEXT    NULL,
    session_id TEXT    NULL
);
CREATE INDEX IF NOT EXISTS ix_page_visits_timestamp ON page_visits (timestamp);

CREATE TABLE IF NOT EXISTS daily_usage_summary (
    date                         TEXT    NOT NULL PRIMARY KEY,
    unique_visitors              INTEGER NOT NULL DEFAULT 0,
    page_views                   INTEGER NOT NULL DEFAULT 0,
    ide_sessions                 INTEGER NOT NULL DEFAULT 0,
    programs_run                 INTEGER NOT NULL DEFAULT 0,
    total_lines_executed         INTEGER NOT NULL DEFAULT 0,
    avg_session_duration_seconds INTEGER NULL,
    updated_at                   TEXT    NOT NULL
);

CREATE VIEW IF NOT EXISTS session_summary AS
SELECT
    date(start_time)                    AS date,
    COUNT(*)                            AS total_sessions,
    SUM(end_time IS NOT NULL)           AS ended_sessions,
    ROUND(AVG(duration_seconds))        AS avg_duration_seconds,
    SUM(programs_run)                   AS total_programs_run,
    SUM(lines_executed)                 AS total_lines_executed,
    COUNT(DISTINCT ip_address)          AS unique_visitors
FROM ide_sessions
GROUP BY date(start_time);
