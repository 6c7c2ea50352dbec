-- CONSUMPTION_REQUEST: a customer asked Apple for a refund, and Apple asks
-- the developer, for 12 hours, what they used of the purchase. One row per
-- request, opened when the notification is stored (not derived by the
-- fold: what was sent to Apple must outlive a rebuild), then moved by the
-- consumption job: OPEN until it is SENT, NOT_SENT (why: a stable code) or
-- MISSED (the deadline passed without an answer). While OPEN, `why` says
-- what it waits for. Its outcome (REFUND, REFUND_DECLINED) is read from
-- the notifications of its transaction.
CREATE TABLE consumption_requests (
    notification_uuid       TEXT    PRIMARY KEY,
    transaction_id          TEXT    NOT NULL,
    original_transaction_id TEXT,
    bundle_id               TEXT,
    environment             TEXT,
    product_id              TEXT,
    product_type            TEXT,
    in_app_ownership_type   TEXT,
    app_account_token       TEXT,
    purchase_date           INTEGER,
    expires_date            INTEGER,
    reason                  TEXT,                -- consumptionRequestReason
    requested_at            INTEGER NOT NULL,    -- Apple's signedDate
    received_at             INTEGER NOT NULL,
    deadline                INTEGER NOT NULL,
    state                   TEXT    NOT NULL,
    why                     TEXT,
    attempts                INTEGER NOT NULL DEFAULT 0,
    next_attempt_at         INTEGER,
    last_error              TEXT,
    send_now_by             TEXT,                -- the support agent who asked to send it now
    claimed_by              TEXT,                -- the instance sending it, until claimed_until
    claimed_until           INTEGER,
    sent_body               TEXT,
    sent_at                 INTEGER,
    apple_status            INTEGER,
    closed_at               INTEGER
);
CREATE INDEX consumption_requests_state ON consumption_requests (state, deadline);
CREATE INDEX consumption_requests_transaction_id ON consumption_requests (transaction_id);
CREATE INDEX consumption_requests_original_transaction_id ON consumption_requests (original_transaction_id);

-- The customer's consent to share consumption data with Apple, as the
-- backend recorded it (PUT /v1/customers/{appAccountToken}/consent): the
-- latest wins.
CREATE TABLE consumption_consents (
    app_account_token TEXT    PRIMARY KEY,
    consumption_data  BOOLEAN NOT NULL,
    recorded_at       INTEGER NOT NULL
);

-- What the backend, or a support agent, said of a transaction for its
-- answer (PUT /v1/transactions/{transactionId}/consumption), in Apple's
-- words; what is left out comes from the app's policy.
CREATE TABLE consumption_facts (
    transaction_id          TEXT    PRIMARY KEY,
    delivery_status         TEXT,
    consumption_percentage  INTEGER,
    sample_content_provided BOOLEAN,
    refund_preference       TEXT,
    recorded_at             INTEGER NOT NULL,
    recorded_by             TEXT    NOT NULL
);
