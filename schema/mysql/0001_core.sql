-- Core usage-tracking tables.
--
-- Plain SQL: `mysql mbasic_logs < schema/mysql/0001_core.sql` works as well as
-- `mbasic-tracking migrate`. Every statement is idempotent.
--
-- Rules the schema keeps so that it runs on MySQL 8.0/8.4, MariaDB 10.11+ and on
-- sharded engines (Vitess, TiDB): no foreign keys, triggers, stored routines or
-- events. Event tables carry their time column in every unique key, so they can be
-- partitioned by time (RANGE COLUMNS on `timestamp`). All times are UTC.

CREATE TABLE IF NOT EXISTS ide_sessions (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    session_id       VARCHAR(64)     NOT NULL,
    start_time       DATETIME(3)     NOT NULL,
    last_activity    DATETIME(3)     NOT NULL,
    end_time         DATETIME(3)     NULL,
    duration_seconds INT UNSIGNED    NULL,
    programs_run     INT UNSIGNED    NOT NULL DEFAULT 0,
    lines_executed   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    user_agent       VARCHAR(512)    NULL,
    ip_address       VARCHAR(64)     NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_ide_sessions_session_id (session_id),
    KEY ix_ide_sessions_start_time (start_time),
    KEY ix_ide_sessions_open (end_time, last_activity)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS program_executions (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id          BINARY(16)      NOT NULL,
    session_id        VARCHAR(64)     NOT NULL,
    timestamp         DATETIME(3)     NOT NULL,
    program_lines     INT UNSIGNED    NULL,
    execution_time_ms INT UNSIGNED    NULL,
    lines_executed    BIGINT UNSIGNED NULL,
    success           BOOLEAN         NULL,
    error_message     VARCHAR(1024)   NULL,
    PRIMARY KEY (id, timestamp),
    UNIQUE KEY uq_program_executions_event (event_id, timestamp),
    KEY ix_program_executions_session (session_id, lines_executed),
    KEY ix_program_executions_timestamp (timestamp)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS feature_usage (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id     BINARY(16)      NOT NULL,
    session_id   VARCHAR(64)     NOT NULL,
    timestamp    DATETIME(3)     NOT NULL,
    feature_name VARCHAR(100)    NOT NULL,
    feature_data JSON            NULL,
    PRIMARY KEY (id, timestamp),
    UNIQUE KEY uq_feature_usage_event (event_id, timestamp),
    KEY ix_feature_usage_session (session_id),
    KEY ix_feature_usage_timestamp (timestamp, feature_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS page_visits (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id   BINARY(16)      NOT NULL,
    timestamp  DATETIME(3)     NOT NULL,
    page_path  VARCHAR(512)    NOT NULL,
    referrer   VARCHAR(1024)   NULL,
    user_agent VARCHAR(512)    NULL,
    ip_address VARCHAR(64)     NULL,
    session_id VARCHAR(64)     NULL,
    PRIMARY KEY (id, timestamp),
    UNIQUE KEY uq_page_visits_event (event_id, timestamp),
    KEY ix_page_visits_timestamp (timestamp, page_path)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS daily_usage_summary (
    date                         DATE            NOT NULL,
    unique_visitors              INT UNSIGNED    NOT NULL DEFAULT 0,
    page_views                   INT UNSIGNED    NOT NULL DEFAULT 0,
    ide_sessions                 INT UNSIGNED    NOT NULL DEFAULT 0,
    programs_run                 INT UNSIGNED    NOT NULL DEFAULT 0,
    total_lines_executed         BIGINT UNSIGNED NOT NULL DEFAULT 0,
    avg_session_duration_seconds INT UNSIGNED    NULL,
    updated_at                   DATETIME(3)     NOT NULL,
    PRIMARY KEY (date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per UTC day on which sessions started, straight from ide_sessions.
CREATE OR REPLACE VIEW session_summary AS
SELECT
    DATE(start_time)                  AS date,
    COUNT(*)                          AS total_sessions,
    SUM(end_time IS NOT NULL)         AS ended_sessions,
    ROUND(AVG(duration_seconds))      AS avg_duration_seconds,
    SUM(programs_run)                 AS total_programs_run,
    SUM(lines_executed)               AS total_lines_executed,
    COUNT(DISTINCT ip_address)        AS unique_visitors
FROM ide_sessions
GROUP BY DATE(start_time);
