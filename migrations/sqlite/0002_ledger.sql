-- Derived from `notifications` by the ledger (src/ledger); `rebuild` recomputes
-- all of it. Nothing here is a source of truth.

-- The state of each subscription (kind 'subscription', item_id the
-- originalTransactionId) and one-time purchase (kind 'purchase', item_id the
-- transactionId).
CREATE TABLE ledger_items (
    kind                    TEXT    NOT NULL,
    item_id                 TEXT    NOT NULL,
    original_transaction_id TEXT    NOT NULL,
    bundle_id               TEXT,
    environment             TEXT,
    product_id              TEXT,
    app_account_token       TEXT,
    status                  TEXT    NOT NULL,
    expires_date            INTEGER,
    last_signed_date        INTEGER NOT NULL,
    state                   TEXT    NOT NULL,   -- JSON of ledger::State
    PRIMARY KEY (kind, item_id)
);
CREATE INDEX ledger_items_app_account_token ON ledger_items (app_account_token);
CREATE INDEX ledger_items_original_transaction_id ON ledger_items (original_transaction_id);

-- Every REFUND and REVOKE, and whether a REFUND_REVERSED undid it.
CREATE TABLE refunds (
    notification_uuid       TEXT    PRIMARY KEY,  -- the notification that reported it
    kind                    TEXT    NOT NULL,
    item_id                 TEXT    NOT NULL,
    notification_type       TEXT    NOT NULL,     -- REFUND or REVOKE
    transaction_id          TEXT,
    original_transaction_id TEXT    NOT NULL,
    product_id              TEXT,
    bundle_id               TEXT,
    environment             TEXT,
    revocation_date         INTEGER,
    revocation_reason       INTEGER,
    revocation_type         TEXT,
    revocation_percentage   INTEGER,
    price                   INTEGER,
    currency                TEXT,
    signed_date             INTEGER NOT NULL,
    refund_date             INTEGER NOT NULL,     -- revocation_date, or signed_date without one
    reversed_at             INTEGER,
    reversed_by             TEXT
);
CREATE INDEX refunds_newest ON refunds (refund_date DESC, notification_uuid DESC);
CREATE INDEX refunds_item ON refunds (kind, item_id);
CREATE INDEX refunds_original_transaction_id ON refunds (original_transaction_id);

-- Every EXPIRED, with its subtype (why it expired).
CREATE TABLE expirations (
    notification_uuid       TEXT    PRIMARY KEY,
    kind                    TEXT    NOT NULL,
    item_id                 TEXT    NOT NULL,
    subtype                 TEXT,
    transaction_id          TEXT,
    original_transaction_id TEXT    NOT NULL,
    product_id              TEXT,
    bundle_id               TEXT,
    environment             TEXT,
    expires_date            INTEGER,
    signed_date             INTEGER NOT NULL
);
CREATE INDEX expirations_item ON expirations (kind, item_id);
CREATE INDEX expirations_original_transaction_id ON expirations (original_transaction_id);
