-- Bookkeeping for the operator's jobs; same table and meaning as
-- schema/mysql/0002_jobs.sql.

CREATE TABLE IF NOT EXISTS tracking_jobs (
    job              TEXT    NOT NULL PRIMARY KEY,
    watermark        TEXT    NULL,
    max_session_id   INTEGER NOT NULL DEFAULT 0,
    max_program_id   INTEGER NOT NULL DEFAULT 0,
    max_visit_id     INTEGER NOT NULL DEFAULT 0,
    last_started_at  TEXT    NULL,
    last_finished_at TEXT    NULL,
    last_outcome     TEXT    NULL
);
