-- Multiseat purchases: a REFUND with subtype SEATS revokes some seats of a
-- transaction and leaves it valid. The refund ledger keeps the subtype and
-- how many seats the refund revoked, so that neither reads as a refund of
-- the whole purchase.
ALTER TABLE refunds ADD COLUMN subtype TEXT;
ALTER TABLE refunds ADD COLUMN revoked_seat_quantity INTEGER;
