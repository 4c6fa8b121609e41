CREATE TABLE apps (
    app_key                    TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_ms BIGINT,
    channels                   TEXT,
    methods                    TEXT,
    rate_limit                 INTEGER,
    enabled                    BOOLEAN NOT NULL DEFAULT TRUE,
    created_ms                 BIGINT NOT NULL,
    updated_ms                 BIGINT NOT NULL
);

CREATE TABLE processes (
    channel_id    TEXT NOT NULL,
    process_type  TEXT NOT NULL,
    process_no    TEXT NOT NULL,
    "user"        TEXT NOT NULL,
    user_id       BIGINT NOT NULL,
    status        TEXT NOT NULL,
    submit_ms     BIGINT,
    complete_ms   BIGINT,
    fund_products TEXT,
    app_key       TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    PRIMARY KEY (channel_id, process_type, process_no)
);

CREATE TABLE loans (
    loan_apply_no         TEXT PRIMARY KEY,
    status                TEXT NOT NULL,
    app_key               TEXT NOT NULL,
    customer_id           TEXT,
    institution_loan_no   TEXT,
    last_change_ms        BIGINT NOT NULL,
    needs_reconciliation  BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms            BIGINT NOT NULL,
    updated_ms            BIGINT NOT NULL
);

CREATE TABLE loan_flags (
    id              BIGSERIAL PRIMARY KEY,
    loan_apply_no   TEXT NOT NULL,
    flag            TEXT NOT NULL
);
CREATE INDEX loan_flags_by_loan ON loan_flags (loan_apply_no, id);

CREATE TABLE idempotency (
    app_key       TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    response      TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    PRIMARY KEY (app_key, request_id)
);

CREATE TABLE inbox (
    id               BIGSERIAL PRIMARY KEY,
    call_id          TEXT NOT NULL UNIQUE,
    received_ms      BIGINT NOT NULL,
    app_key          TEXT NOT NULL,
    method           TEXT NOT NULL,
    params           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    error_code       INTEGER,
    biz_code         TEXT,
    subject          TEXT,
    idempotency_key  TEXT,
    detail           TEXT NOT NULL,
    response         TEXT NOT NULL
);
CREATE INDEX inbox_by_subject ON inbox (subject, id) WHERE subject IS NOT NULL;
CREATE INDEX inbox_by_app ON inbox (app_key, id);

-- The inbox is an audit trail: nothing in it is ever changed or removed.
CREATE FUNCTION loanwire_inbox_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the inbox is append-only';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER inbox_append_only BEFORE UPDATE OR DELETE ON inbox
    FOR EACH ROW EXECUTE FUNCTION loanwire_inbox_append_only();
