-- A customer is also known by the download of the app that their every
-- purchase carries (appTransactionId): backends ask for their items by it,
-- and RESCIND_CONSENT names it. ledger_items keeps the latest one signed;
-- items folded before are found once `rebuild` folds them again.
ALTER TABLE ledger_items ADD COLUMN app_transaction_id TEXT;
CREATE INDEX ledger_items_app_transaction_id ON ledger_items (app_transaction_id);

-- RESCIND_CONSENT: a parent withdrew consent for a minor's use of the app.
-- A state of the customer, not of a purchase: kept per appTransactionId,
-- from the first notification that said so, and given with every answer
-- about that customer. Written when the notification is stored (not
-- derived by the fold, so `rebuild` keeps it), and read here from those
-- stored before this version.
CREATE TABLE consents (
    app_transaction_id TEXT   PRIMARY KEY,
    rescinded_date     BIGINT NOT NULL,
    notification_uuid  TEXT   NOT NULL
);
INSERT INTO consents (app_transaction_id, rescinded_date, notification_uuid)
SELECT app_transaction_id, min(signed_date), min(notification_uuid)
FROM (
    SELECT payload -> 'appData' -> 'signedAppTransactionInfo' ->> 'appTransactionId' AS app_transaction_id,
           coalesce(signed_date, received_at) AS signed_date, notification_uuid
    FROM notifications WHERE notification_type = 'RESCIND_CONSENT'
) AS rescinded
WHERE app_transaction_id IS NOT NULL
GROUP BY app_transaction_id;
