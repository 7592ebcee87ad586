-- Bookkeeping for the operator's jobs (`mbasic-tracking rollup` and `purge`).
--
-- One row per job. `watermark` is where the job got to: for rollup, the server
-- time at which its last run began (sessions that changed after it are
-- recomputed next time); for purge, the first instant it did not delete (every
-- raw row before it is gone, and rollup never recomputes those days from the
-- little that is left). The `max_*_id` columns are rollup's high-water marks:
-- rows with a larger id arrived after its last run, whatever their timestamps.

CREATE TABLE IF NOT EXISTS tracking_jobs (
    job              VARCHAR(64)     NOT NULL,
    watermark        DATETIME(3)     NULL,
    max_session_id   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    max_program_id   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    max_visit_id     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    last_started_at  DATETIME(3)     NULL,
    last_finished_at DATETIME(3)     NULL,
    last_outcome     VARCHAR(255)    NULL,
    PRIMARY KEY (job)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
