-- Two indexes of event_deliveries that cost more than they served: every
-- fan-out inserted a random key into the event_id index, and every claim
-- and result wrote the claimed_by index. A claim's rows now come back from
-- its UPDATE (RETURNING), and an event's deliveries are found through the
-- (endpoint, event_id) key, one seek per endpoint.
DROP INDEX event_deliveries_claimed;
DROP INDEX event_deliveries_event;
