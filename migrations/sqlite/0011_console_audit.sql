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

-- Notifications per hour and the last one per app: the delivery health page.
CREATE INDEX notifications_received ON notifications (bundle_id, environment, received_at);
CREATE INDEX notifications_received_at ON notifications (received_at);

-- The findings about one customer, on the timeline.
CREATE INDEX findings_original_transaction_id ON findings (original_transaction_id);
