-- What /metrics reports, kept current by the writes themselves so that a
-- scrape reads a few rows instead of counting whole tables. Triggers see
-- every path that inserts or deletes (webhook, release, import, rebuild),
-- and only rows really inserted: an ignored duplicate counts nothing.
CREATE TABLE totals (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO totals (name, value) VALUES
    ('notifications', (SELECT count(*) FROM notifications)),
    ('quarantined_notifications', (SELECT count(*) FROM quarantined_notifications));

CREATE TRIGGER notifications_counted AFTER INSERT ON notifications
BEGIN
    UPDATE totals SET value = value + 1 WHERE name = 'notifications';
END;
CREATE TRIGGER notifications_uncounted AFTER DELETE ON notifications
BEGIN
    UPDATE totals SET value = value - 1 WHERE name = 'notifications';
END;
CREATE TRIGGER quarantined_counted AFTER INSERT ON quarantined_notifications
BEGIN
    UPDATE totals SET value = value + 1 WHERE name = 'quarantined_notifications';
END;
CREATE TRIGGER quarantined_uncounted AFTER DELETE ON quarantined_notifications
BEGIN
    UPDATE totals SET value = value - 1 WHERE name = 'quarantined_notifications';
END;

-- Open findings per kind: opened, resolved, reopened, deleted.
CREATE TABLE open_findings (
    kind TEXT    PRIMARY KEY,
    open INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO open_findings (kind, open)
    SELECT kind, count(*) FROM findings WHERE resolved_at IS NULL GROUP BY kind;

CREATE TRIGGER finding_opened AFTER INSERT ON findings WHEN NEW.resolved_at IS NULL
BEGIN
    INSERT INTO open_findings (kind, open) VALUES (NEW.kind, 1)
        ON CONFLICT (kind) DO UPDATE SET open = open + 1;
END;
CREATE TRIGGER finding_resolved AFTER UPDATE OF resolved_at ON findings
    WHEN OLD.resolved_at IS NULL AND NEW.resolved_at IS NOT NULL
BEGIN
    UPDATE open_findings SET open = open - 1 WHERE kind = OLD.kind;
END;
CREATE TRIGGER finding_reopened AFTER UPDATE OF resolved_at ON findings
    WHEN OLD.resolved_at IS NOT NULL AND NEW.resolved_at IS NULL
BEGIN
    INSERT INTO open_findings (kind, open) VALUES (NEW.kind, 1)
        ON CONFLICT (kind) DO UPDATE SET open = open + 1;
END;
CREATE TRIGGER finding_deleted AFTER DELETE ON findings WHEN OLD.resolved_at IS NULL
BEGIN
    UPDATE open_findings SET open = open - 1 WHERE kind = OLD.kind;
END;
