-- The round sending an endpoint's next page of the feed, and until when:
-- new events go out before any delivery row is written, and each is kept
-- once, with what came of its attempt, when the round ends (a row written,
-- claimed and updated for every event cost ingest a fifth of its rate).
-- Another instance takes the page only once the lease has lapsed.
ALTER TABLE event_endpoints ADD COLUMN fan_out_by TEXT;
ALTER TABLE event_endpoints ADD COLUMN fan_out_until INTEGER;
