-- Who opened which console page, and when: support staff see personal
-- purchase data, and that access is audited (admins read it in the console).
CREATE TABLE console_access_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,   -- milliseconds
    user_name TEXT    NOT NULL,
    page      TEXT    NOT NULL,   -- timeline, payload, search, refunds, ...
    subject   TEXT    NOT NULL    -- what was asked for: an id, a token, the filters
);
CREATE INDEX console_access_log_user ON console_access_log (user_name, id);

-- Deliveries refused before anything was stored (forged, broken, not a
-- notification), per hour and code: what the delivery health page shows to
-- tell "Apple did not send it" from "we refused it". Kept per hour, not per
-- request, so that a flood of garbage costs a few rows.
CREATE TABLE delivery_rejections (
    hour  INTEGER NOT NULL,       -- milliseconds, start of the hour
    code  TEXT    NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, code)
);

-- Notifications received per hour, app and environment, and the last one:
-- what the delivery health page shows, kept by a trigger (as totals are) so
-- that the page reads a few rows per hour instead of scanning notifications.
CREATE TABLE notification_hours (
    hour             INTEGER NOT NULL,   -- milliseconds, start of the hour
    bundle_id        TEXT    NOT NULL,   -- '' when the notification had none
    environment      TEXT    NOT NULL,
    count            INTEGER NOT NULL,
    last_received_at INTEGER NOT NULL,
    PRIMARY KEY (hour, bundle_id, environment)
) WITHOUT ROWID;
INSERT INTO notification_hours (hour, bundle_id, environment, count, last_received_at)
    SELECT (received_at / 3600000) * 3600000, coalesce(bundle_id, ''), coalesce(environment, ''),
           count(*), max(received_at)
    FROM notifications GROUP BY 1, 2, 3;

CREATE TRIGGER notifications_per_hour AFTER INSERT ON notifications
BEGIN
    INSERT INTO notification_hours (hour, bundle_id, environment, count, last_received_at)
    VALUES ((NEW.received_at / 3600000) * 3600000, coalesce(NEW.bundle_id, ''),
            coalesce(NEW.environment, ''), 1, NEW.received_at)
    ON CONFLICT (hour, bundle_id, environment) DO UPDATE
        SET count = count + 1, last_received_at = max(last_received_at, excluded.last_received_at);
END;
CREATE TRIGGER notifications_per_hour_deleted AFTER DELETE ON notifications
BEGIN
    UPDATE notification_hours SET count = count - 1
    WHERE hour = (OLD.received_at / 3600000) * 3600000
      AND bundle_id = coalesce(OLD.bundle_id, '') AND environment = coalesce(OLD.environment, '');
END;

-- The findings about one customer, on the timeline.
CREATE INDEX findings_original_transaction_id ON findings (original_transaction_id);
