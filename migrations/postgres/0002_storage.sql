-- How large values are kept. A signed payload is base64: compression saves
-- little and pglz tried it on every insert, the largest single cost of
-- storing a notification. It is kept as received, out of line when large.
-- Decoded payloads and ledger states are JSON and compress well: with lz4
-- where the server has it (several times faster than pglz).
ALTER TABLE notifications ALTER COLUMN signed_payload SET STORAGE EXTERNAL;
ALTER TABLE quarantined_notifications ALTER COLUMN signed_payload SET STORAGE EXTERNAL;
ALTER TABLE notification_conflicts ALTER COLUMN signed_payload SET STORAGE EXTERNAL;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE notifications ALTER COLUMN payload SET COMPRESSION lz4;
        ALTER TABLE quarantined_notifications ALTER COLUMN payload SET COMPRESSION lz4;
        ALTER TABLE notification_conflicts ALTER COLUMN payload SET COMPRESSION lz4;
        ALTER TABLE ledger_items ALTER COLUMN state SET COMPRESSION lz4;
        ALTER TABLE apple_evidence ALTER COLUMN signed_data SET COMPRESSION lz4;
        ALTER TABLE apple_evidence ALTER COLUMN payload SET COMPRESSION lz4;
    END IF;
END;
$$;
