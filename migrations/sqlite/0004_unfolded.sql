-- Stored notifications whose payload does not read as a ledger event, so
-- they are not folded. Written by refold and rebuild, raised by the checker
-- as UNFOLDED_NOTIFICATION, and cleared when a rebuild folds them.
CREATE TABLE unfolded_notifications (
    notification_uuid       TEXT    PRIMARY KEY,
    original_transaction_id TEXT,
    reason                  TEXT    NOT NULL
);
