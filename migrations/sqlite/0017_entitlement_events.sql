-- Entitlement events: each change of the answer about an item that
-- consumers were told, written in the transaction of the fold that made it
-- (the outbox), in one global order (txid, id) that a feed cursor follows.
-- Not derived: rebuild adds events only for answers it changed.
CREATE TABLE entitlement_events (
    id          INTEGER PRIMARY KEY,
    -- PostgreSQL's writing transaction: the feed shows an event once every
    -- transaction that began before it has ended. One writer here: 0.
    txid        INTEGER NOT NULL DEFAULT 0,
    event_id    TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    item_id     TEXT    NOT NULL,
    sequence    INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    -- The notificationUUID, the evidence id of an app report or Apple's
    -- answer, or `rebuild`.
    cause       TEXT    NOT NULL,
    occurred_at INTEGER NOT NULL,
    data        TEXT    NOT NULL,
    UNIQUE (kind, item_id, sequence)
);
CREATE INDEX entitlement_events_occurred_at ON entitlement_events (occurred_at);

-- The answer about each item that consumers were last told, and the
-- sequence of its last event: the "before" of the next change.
CREATE TABLE told_answers (
    item_key TEXT   PRIMARY KEY,  -- kind:item_id
    answer   TEXT    NOT NULL,
    sequence INTEGER NOT NULL,
    told_at  INTEGER NOT NULL
);

-- How far retention has pruned the feed: an older cursor has lost events.
CREATE TABLE events_pruned (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    txid    INTEGER NOT NULL,
    id      INTEGER NOT NULL
);
