-- A notificationUUID that arrived again with different content. The first
-- stored stays authoritative in `notifications`; the others are kept here as
-- evidence.
CREATE TABLE notification_conflicts (
    id                INTEGER PRIMARY KEY,
    notification_uuid TEXT    NOT NULL,
    received_at       INTEGER NOT NULL,
    signed_payload    TEXT    NOT NULL,
    payload           TEXT    NOT NULL
);
CREATE UNIQUE INDEX notification_conflicts_payload ON notification_conflicts (notification_uuid, signed_payload);

-- What the inconsistency checker found, kept by `serve`'s periodic check. One
-- open finding per (kind, subject); it resolves by itself when a check no
-- longer finds it.
CREATE TABLE findings (
    id                      INTEGER PRIMARY KEY,
    kind                    TEXT    NOT NULL,
    subject                 TEXT    NOT NULL,   -- originalTransactionId, transactionId or notificationUUID
    original_transaction_id TEXT,
    bundle_id               TEXT,
    environment             TEXT,
    detail                  TEXT    NOT NULL,
    first_seen              INTEGER NOT NULL,
    last_seen               INTEGER NOT NULL,
    resolved_at             INTEGER
);
CREATE UNIQUE INDEX findings_open ON findings (kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX findings_kind ON findings (kind, resolved_at);
