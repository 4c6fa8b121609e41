-- The console and the reconciliation report (SPEC 4). See the SQLite migration for why.
CREATE TABLE call_minutes (
    minute_ms  BIGINT NOT NULL,
    app_key    TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    code       TEXT NOT NULL,
    n          BIGINT NOT NULL,
    first_id   BIGINT NOT NULL,
    last_id    BIGINT NOT NULL,
    PRIMARY KEY (minute_ms, app_key, outcome, code)
);

CREATE TABLE call_minutes_upto (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id   BIGINT NOT NULL
);
INSERT INTO call_minutes_upto (singleton, id) VALUES (1, 0);

CREATE INDEX loans_flagged ON loans (updated_ms, loan_apply_no) WHERE needs_reconciliation;
CREATE INDEX processes_in_processing ON processes (updated_ms) WHERE status = 'IN_PROCESSING';

ALTER TABLE loan_flags ADD COLUMN resolved_ms BIGINT;

CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_ms);
