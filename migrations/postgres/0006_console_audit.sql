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

CREATE INDEX notifications_received ON notifications (bundle_id, environment, received_at);
CREATE INDEX notifications_received_at ON notifications (received_at);

-- The findings about one customer, on the timeline.
CREATE INDEX findings_original_transaction_id ON findings (original_transaction_id);
