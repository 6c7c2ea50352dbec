-- Multiseat purchases: a REFUND with subtype SEATS revokes some seats of a
-- transaction and leaves it valid. The refund ledger keeps the subtype and
-- how many seats the refund revoked, so that neither reads as a refund of
-- the whole purchase.
ALTER TABLE refunds ADD COLUMN subtype TEXT;
ALTER TABLE refunds ADD COLUMN revoked_seat_quantity INTEGER;

-- Every appAccountToken an item carried finds it: Set App Account Token
-- changes the token on later transactions, and a backend links a family
-- member's account to a purchase Apple signed without one. Derived from
-- the states like the rest, rebuilt with them; ledger_items keeps the
-- latest token, which finds items folded before this table existed.
CREATE TABLE item_tokens (
    app_account_token       TEXT NOT NULL,
    kind                    TEXT NOT NULL,
    item_id                 TEXT NOT NULL,
    original_transaction_id TEXT NOT NULL,
    PRIMARY KEY (app_account_token, kind, item_id)
);
CREATE INDEX item_tokens_original_transaction_id ON item_tokens (original_transaction_id);

-- A genuine notification of a shape this version does not know (a type,
-- a subtype, a container) is stored and acknowledged like any other; this
-- says which ones, so that the checker can tell the operator to upgrade.
-- The checker judges each again by the running version.
CREATE TABLE unknown_shapes (
    notification_uuid       TEXT    PRIMARY KEY,
    what                    TEXT    NOT NULL,
    original_transaction_id TEXT,
    received_at             INTEGER NOT NULL
);
