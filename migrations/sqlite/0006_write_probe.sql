-- /health writes here through the same writer, in the same kind of
-- transaction as a notification, so that a database that cannot take a
-- write (read-only files, a full disk) is reported before Apple meets it.
-- One row, rewritten each time with a payload the size of a notification.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL,
    filler BLOB NOT NULL
);
