-- Who told of a refund: a REFUND or REVOKE notification, or Apple's Refund
-- History when the notification never came (APPLE_API). Rows before this
-- version came from notifications.
ALTER TABLE refunds ADD COLUMN source TEXT NOT NULL DEFAULT 'NOTIFICATION';
