-- Takes a notification's item lock (the key the service's lock_item takes),
-- stores the notification and, when it is new, reads the item's state: one
-- round trip where there were three, on every notification. The lock comes
-- first: a batch locks its items in key order, and a notification that two
-- batches store at once is waited for at its item's place in that order,
-- so batches never wait on each other in a circle. A VOLATILE function's
-- statements each see what was committed before they began, so the state
-- read after the lock includes every notification of the item committed
-- before it.
CREATE FUNCTION record_notification(
    new_uuid TEXT, new_type TEXT, new_subtype TEXT, new_signed_date BIGINT,
    new_received_at BIGINT, new_environment TEXT, new_bundle_id TEXT,
    new_app_apple_id BIGINT, new_original_transaction_id TEXT,
    new_transaction_id TEXT, new_signed_payload TEXT, new_payload JSONB,
    item_kind TEXT, item_key TEXT,
    OUT stored BOOLEAN, OUT item_state TEXT)
VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    IF item_kind IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(item_kind || ':' || item_key, 0));
    END IF;
    INSERT INTO notifications (notification_uuid, notification_type, subtype,
        signed_date, received_at, environment, bundle_id, app_apple_id,
        original_transaction_id, transaction_id, signed_payload, payload)
    VALUES (new_uuid, new_type, new_subtype, new_signed_date, new_received_at,
        new_environment, new_bundle_id, new_app_apple_id,
        new_original_transaction_id, new_transaction_id, new_signed_payload,
        new_payload)
    ON CONFLICT (notification_uuid) DO NOTHING;
    stored := FOUND;
    IF stored AND item_kind IS NOT NULL THEN
        SELECT CAST(l.state AS TEXT) INTO item_state
        FROM ledger_items l WHERE l.kind = item_kind AND l.item_id = item_key;
    END IF;
END;
$$;

-- The count for /metrics, in the trigger itself rather than through a SQL
-- function, which PostgreSQL plans again on every call.
CREATE OR REPLACE FUNCTION notifications_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO totals (name, shard, value)
    VALUES (TG_TABLE_NAME, pg_backend_pid(), CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END)
    ON CONFLICT (name, shard) DO UPDATE SET value = totals.value + excluded.value;
    RETURN NULL;
END;
$$;
