-- Who opened which console page, and when: support staff see personal
-- purchase data, and that access is audited (admins read it in the console).
CREATE TABLE console_access_log (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    user_name TEXT COLLATE "C" NOT NULL,
    page      TEXT COLLATE "C" NOT NULL,
    subject   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX console_access_log_user ON console_access_log (user_name, id);

-- Deliveries refused before anything was stored, per hour and code (see
-- the SQLite schema).
CREATE TABLE delivery_rejections (
    hour  BIGINT NOT NULL,
    code  TEXT COLLATE "C" NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (hour, code)
);

-- Notifications received per hour, app and environment, and the last one,
-- kept by a trigger for the delivery health page (see the SQLite schema).
-- Like totals, each database session adds to rows of its own (its backend
-- pid), so that instances inserting at once never wait on one row.
CREATE TABLE notification_hours (
    hour             BIGINT NOT NULL,
    bundle_id        TEXT COLLATE "C" NOT NULL,
    environment      TEXT COLLATE "C" NOT NULL,
    shard            INTEGER NOT NULL,
    count            BIGINT NOT NULL,
    last_received_at BIGINT NOT NULL,
    PRIMARY KEY (hour, bundle_id, environment, shard)
);
INSERT INTO notification_hours (hour, bundle_id, environment, shard, count, last_received_at)
    SELECT (received_at / 3600000) * 3600000, coalesce(bundle_id, ''), coalesce(environment, ''),
           0, count(*), max(received_at)
    FROM notifications GROUP BY 1, 2, 3;

CREATE FUNCTION notifications_per_hour() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO notification_hours (hour, bundle_id, environment, shard, count, last_received_at)
        VALUES ((NEW.received_at / 3600000) * 3600000, coalesce(NEW.bundle_id, ''),
                coalesce(NEW.environment, ''), pg_backend_pid(), 1, NEW.received_at)
        ON CONFLICT (hour, bundle_id, environment, shard) DO UPDATE
            SET count = notification_hours.count + 1,
                last_received_at = greatest(notification_hours.last_received_at, excluded.last_received_at);
    ELSE
        INSERT INTO notification_hours (hour, bundle_id, environment, shard, count, last_received_at)
        VALUES ((OLD.received_at / 3600000) * 3600000, coalesce(OLD.bundle_id, ''),
                coalesce(OLD.environment, ''), pg_backend_pid(), -1, OLD.received_at)
        ON CONFLICT (hour, bundle_id, environment, shard) DO UPDATE
            SET count = notification_hours.count - 1;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER notifications_per_hour AFTER INSERT OR DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_per_hour();

-- The findings about one customer, on the timeline.
CREATE INDEX findings_original_transaction_id ON findings (original_transaction_id);
