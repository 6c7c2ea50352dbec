-- What the App Store Server API adds: Apple's record of its attempts to
-- deliver each notification, resumable backfills, Apple's answers kept as
-- evidence the ledger folds, and how a finding was settled.

-- From Notification History: whether and why our endpoint failed.
CREATE TABLE notification_send_attempts (
    notification_uuid TEXT PRIMARY KEY,
    send_attempts     TEXT NOT NULL,    -- JSON: [{"attemptDate": ms, "sendAttemptResult": "..."}]
    fetched_at        INTEGER NOT NULL
);

-- One backfill; an unfinished one with the same request continues from
-- its pagination token.
CREATE TABLE backfill_runs (
    id               INTEGER PRIMARY KEY,
    bundle_id        TEXT NOT NULL,
    environment      TEXT NOT NULL,
    start_date       INTEGER NOT NULL,
    end_date         INTEGER NOT NULL,
    until_given      INTEGER,           -- NULL: "until now", fixed when the run began
    only_failures    INTEGER NOT NULL,
    pagination_token TEXT,
    fetched          INTEGER NOT NULL DEFAULT 0,
    stored           INTEGER NOT NULL DEFAULT 0,
    duplicates       INTEGER NOT NULL DEFAULT 0,
    rejected         INTEGER NOT NULL DEFAULT 0,
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
CREATE INDEX backfill_runs_request ON backfill_runs (bundle_id, environment, start_date, only_failures);

-- Apple's answers (subscription status, transaction history), verified,
-- folded into the ledger like notifications, ordered by their signedDate.
CREATE TABLE apple_evidence (
    evidence_id             TEXT PRIMARY KEY,   -- from the signed content: a repeat adds nothing
    source                  TEXT NOT NULL,      -- GET_ALL_SUBSCRIPTION_STATUSES | GET_TRANSACTION_HISTORY
    original_transaction_id TEXT,
    transaction_id          TEXT,
    signed_date             INTEGER NOT NULL,
    fetched_at              INTEGER NOT NULL,
    bundle_id               TEXT,
    environment             TEXT,
    signed_data             TEXT NOT NULL,      -- JSON: the tokens as Apple sent them
    payload                 TEXT NOT NULL       -- the ledger event read from them
);
CREATE INDEX apple_evidence_original ON apple_evidence (original_transaction_id);
CREATE INDEX apple_evidence_transaction ON apple_evidence (transaction_id);

-- CONFIRMED_BY_APPLE or CORRECTED_FROM_APPLE when Apple's answer settled it.
ALTER TABLE findings ADD COLUMN resolution TEXT;
