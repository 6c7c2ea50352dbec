-- record_notification (0003: the item's lock, the insert, the item's state)
-- and, when the notification is new, what was last told of the item and
-- when each customer its fold may name (the one the item's state names,
-- the one the notification names) withdrew consent: the fold then saves
-- the item and keeps what it tells in one statement, two round trips a
-- notification where there were three. record_notification is called, not
-- repeated, so that how a notification is locked and stored stays in one
-- place; the instances of the version before call it alone while an
-- upgrade replaces them one at a time.
CREATE FUNCTION record_notification_told(
    new_uuid TEXT, new_type TEXT, new_subtype TEXT, new_signed_date BIGINT,
    new_received_at BIGINT, new_environment TEXT, new_bundle_id TEXT,
    new_app_apple_id BIGINT, new_original_transaction_id TEXT,
    new_transaction_id TEXT, new_signed_payload TEXT, new_payload JSONB,
    item_kind TEXT, item_id TEXT, event_customer TEXT,
    OUT stored BOOLEAN, OUT item_state TEXT,
    OUT told_answer TEXT, OUT told_sequence BIGINT, OUT told_moment BIGINT,
    OUT told_changes BIGINT, OUT state_customer TEXT,
    OUT state_customer_consent BIGINT, OUT event_customer_consent BIGINT)
VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    SELECT r.stored, r.item_state INTO stored, item_state
    FROM record_notification(new_uuid, new_type, new_subtype, new_signed_date,
        new_received_at, new_environment, new_bundle_id, new_app_apple_id,
        new_original_transaction_id, new_transaction_id, new_signed_payload,
        new_payload, item_kind, item_id) r;
    IF stored AND item_kind IS NOT NULL THEN
        SELECT l.app_transaction_id INTO state_customer
        FROM ledger_items l
        WHERE l.kind = record_notification_told.item_kind
          AND l.item_id = record_notification_told.item_id;
        SELECT CAST(t.answer AS TEXT), t.sequence, t.told_at, t.changes_at
        INTO told_answer, told_sequence, told_moment, told_changes
        FROM told_answers t
        WHERE t.item_key = record_notification_told.item_kind || ':'
                           || record_notification_told.item_id;
        SELECT c.rescinded_date INTO state_customer_consent
        FROM consents c WHERE c.app_transaction_id = state_customer;
        SELECT c.rescinded_date INTO event_customer_consent
        FROM consents c WHERE c.app_transaction_id = event_customer;
    END IF;
END;
$$;
