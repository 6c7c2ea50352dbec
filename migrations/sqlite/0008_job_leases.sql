-- Which `serve` runs each periodic job (check, backfill, reconcile) when
-- several share the database: the holder renews its lease on every run; a
-- lease that lapsed (its holder crashed) is taken over, and one given back
-- at shutdown is taken at once.
CREATE TABLE job_leases (
    job        TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
