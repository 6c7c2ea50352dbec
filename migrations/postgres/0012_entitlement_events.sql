-- Entitlement events: each change of the answer about an item that
-- consumers were told, written in the transaction of the fold that made it
-- (the outbox), in one global order (txid, id) that a feed cursor follows.
-- Not derived: rebuild adds events only for answers it changed.
CREATE TABLE entitlement_events (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction: ids are taken before commit, so a later id
    -- may commit first; the feed orders by (txid, id) and shows an event
    -- once every transaction older than the oldest running one has ended.
    txid        BIGINT  NOT NULL DEFAULT (CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)),
    event_id    TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    item_id     TEXT    NOT NULL,
    sequence    BIGINT  NOT NULL,
    type        TEXT    NOT NULL,
    -- The notificationUUID, the evidence id of an app report or Apple's
    -- answer, or `rebuild`.
    cause       TEXT    NOT NULL,
    occurred_at BIGINT  NOT NULL,
    data        JSONB   NOT NULL,
    UNIQUE (kind, item_id, sequence)
);
CREATE INDEX entitlement_events_occurred_at ON entitlement_events (occurred_at);
CREATE INDEX entitlement_events_order ON entitlement_events (txid, id);

-- The answer about each item that consumers were last told, and the
-- sequence of its last event: the "before" of the next change.
CREATE TABLE told_answers (
    item_key TEXT   PRIMARY KEY,  -- kind:item_id
    answer   JSONB  NOT NULL,
    sequence BIGINT NOT NULL,
    told_at  BIGINT NOT NULL
);

-- How far retention has pruned the feed: an older cursor has lost events.
CREATE TABLE events_pruned (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    txid    BIGINT  NOT NULL,
    id      BIGINT  NOT NULL
);
