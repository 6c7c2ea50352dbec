-- Every notification that verified and belongs to a configured app, as Apple
-- signed it and as decoded. The ledger is derived from this table alone.
CREATE TABLE notifications (
    id                      INTEGER PRIMARY KEY,
    notification_uuid       TEXT    NOT NULL,
    notification_type       TEXT    NOT NULL,
    subtype                 TEXT,
    signed_date             INTEGER,            -- Apple's milliseconds
    received_at             INTEGER NOT NULL,   -- milliseconds, our clock
    environment             TEXT,
    bundle_id               TEXT,
    app_apple_id            INTEGER,
    original_transaction_id TEXT,
    transaction_id          TEXT,
    signed_payload          TEXT    NOT NULL,   -- the JWS exactly as received
    payload                 TEXT    NOT NULL    -- decoded JSON, nested tokens decoded in place
);

-- Apple retries and sometimes sends twice: one row per notification.
CREATE UNIQUE INDEX notifications_notification_uuid ON notifications (notification_uuid);
CREATE INDEX notifications_original_transaction_id ON notifications (original_transaction_id, signed_date);
CREATE INDEX notifications_transaction_id ON notifications (transaction_id);

-- Genuine notifications (signature and chain proven) for an app or
-- environment this receiver is not configured for. Kept so that a
-- misconfiguration loses nothing; `reprocess --quarantined` releases them.
CREATE TABLE quarantined_notifications (
    id                      INTEGER PRIMARY KEY,
    notification_uuid       TEXT    NOT NULL,
    notification_type       TEXT    NOT NULL,
    subtype                 TEXT,
    signed_date             INTEGER,
    received_at             INTEGER NOT NULL,
    environment             TEXT,
    bundle_id               TEXT,
    app_apple_id            INTEGER,
    original_transaction_id TEXT,
    transaction_id          TEXT,
    signed_payload          TEXT    NOT NULL,
    payload                 TEXT    NOT NULL,
    reason_code             TEXT    NOT NULL,
    reason                  TEXT    NOT NULL
);

CREATE UNIQUE INDEX quarantined_notifications_notification_uuid ON quarantined_notifications (notification_uuid);
