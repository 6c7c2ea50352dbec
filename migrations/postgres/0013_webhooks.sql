-- Webhook deliveries of entitlement events. Each endpoint follows the feed
-- with a cursor of its own; each event it wants becomes a delivery, tried
-- until the endpoint answers 2xx or three days have passed.
CREATE TABLE event_endpoints (
    name            TEXT    PRIMARY KEY,
    cursor_txid     BIGINT  NOT NULL,
    cursor_id       BIGINT  NOT NULL,
    -- Set when the endpoint answered 410 Gone: nothing is sent until an
    -- operator enables it again (`events enable`).
    disabled_at     BIGINT,
    disabled_why    TEXT,
    last_success_at BIGINT,
    -- The first failed attempt since the last success.
    failing_since   BIGINT
);

CREATE TABLE event_deliveries (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint         TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    -- kind:item_id and the event's sequence: the next event of an item
    -- waits until the one before it is delivered (or given up).
    item_key         TEXT    NOT NULL,
    sequence         BIGINT  NOT NULL,
    -- PENDING, DELIVERED, FAILED (given up after three days).
    state            TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    created_at       BIGINT  NOT NULL,
    next_attempt_at  BIGINT  NOT NULL,
    first_attempt_at BIGINT,
    last_attempt_at  BIGINT,
    last_status      BIGINT,
    last_error       TEXT,
    delivered_at     BIGINT,
    -- The instance sending it now, until when: another takes it after.
    claimed_by       TEXT,
    claimed_until    BIGINT,
    UNIQUE (endpoint, event_id)
);
-- Small: only what is still to send, and what an instance holds now.
CREATE INDEX event_deliveries_due ON event_deliveries (endpoint, next_attempt_at, id)
    WHERE state = 'PENDING';
CREATE INDEX event_deliveries_item ON event_deliveries (endpoint, item_key, sequence)
    WHERE state = 'PENDING';
CREATE INDEX event_deliveries_claimed ON event_deliveries (claimed_by)
    WHERE claimed_by IS NOT NULL;
CREATE INDEX event_deliveries_failed ON event_deliveries (endpoint)
    WHERE state = 'FAILED';
CREATE INDEX event_deliveries_event ON event_deliveries (event_id);
CREATE INDEX event_deliveries_created_at ON event_deliveries (created_at);

-- When the answer last told stops being true unless something new comes
-- (a period's end, a grace period's): the clock's job tells it again then.
ALTER TABLE told_answers ADD COLUMN changes_at BIGINT;
CREATE INDEX told_answers_changes_at ON told_answers (changes_at) WHERE changes_at IS NOT NULL;

-- Answers to seed without events: items folded before this version told
-- anything must not announce their current answer as new. Start-up walks
-- the ledger from `after` and removes the row when done.
CREATE TABLE told_seeding (
    one   INTEGER PRIMARY KEY CHECK (one = 1),
    after TEXT    NOT NULL
);
INSERT INTO told_seeding (one, after) VALUES (1, '');
