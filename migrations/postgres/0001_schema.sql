-- The whole schema for PostgreSQL, the same tables as SQLite's migrations
-- build one by one, in PostgreSQL's own types: BIGINT millisecond
-- timestamps, JSONB for decoded payloads and ledger states, a SHA-256 of
-- each signed payload to compare versions (no unique index on large text).
-- Text compares by bytes (COLLATE "C"), as in SQLite, whatever the
-- database's locale: pages and orders are the same on both.

-- The digest by which signed payloads are compared. Declared immutable: the
-- database's encoding does not change under it.
CREATE FUNCTION payload_digest(signed_payload TEXT) RETURNS BYTEA
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    AS $$ SELECT sha256(convert_to(signed_payload, 'UTF8')) $$;

-- Every notification that verified and belongs to a configured app, as Apple
-- signed it and as decoded. The ledger is derived from this table alone.
CREATE TABLE notifications (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_uuid       TEXT COLLATE "C"    NOT NULL,
    notification_type       TEXT COLLATE "C"    NOT NULL,
    subtype                 TEXT COLLATE "C",
    signed_date             BIGINT,             -- Apple's milliseconds
    received_at             BIGINT  NOT NULL,   -- milliseconds, our clock
    environment             TEXT COLLATE "C",
    bundle_id               TEXT COLLATE "C",
    app_apple_id            BIGINT,
    original_transaction_id TEXT COLLATE "C",
    transaction_id          TEXT COLLATE "C",
    signed_payload          TEXT COLLATE "C"    NOT NULL,   -- the JWS exactly as received
    signed_payload_sha256   BYTEA   GENERATED ALWAYS AS (payload_digest(signed_payload)) STORED,
    payload                 JSONB   NOT NULL    -- decoded, nested tokens decoded in place
);
-- Apple retries and sometimes sends twice: one row per notification, also
-- when two instances receive the same one at once.
CREATE UNIQUE INDEX notifications_notification_uuid ON notifications (notification_uuid);
CREATE INDEX notifications_original_transaction_id ON notifications (original_transaction_id, signed_date);
CREATE INDEX notifications_transaction_id ON notifications (transaction_id);

-- Genuine notifications for an app or environment this receiver is not
-- configured for; `reprocess --quarantined` releases them.
CREATE TABLE quarantined_notifications (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_uuid       TEXT COLLATE "C"    NOT NULL,
    notification_type       TEXT COLLATE "C"    NOT NULL,
    subtype                 TEXT COLLATE "C",
    signed_date             BIGINT,
    received_at             BIGINT  NOT NULL,
    environment             TEXT COLLATE "C",
    bundle_id               TEXT COLLATE "C",
    app_apple_id            BIGINT,
    original_transaction_id TEXT COLLATE "C",
    transaction_id          TEXT COLLATE "C",
    signed_payload          TEXT COLLATE "C"    NOT NULL,
    signed_payload_sha256   BYTEA   GENERATED ALWAYS AS (payload_digest(signed_payload)) STORED,
    payload                 JSONB   NOT NULL,
    reason_code             TEXT COLLATE "C"    NOT NULL,
    reason                  TEXT COLLATE "C"    NOT NULL
);
CREATE UNIQUE INDEX quarantined_notifications_notification_uuid ON quarantined_notifications (notification_uuid);

-- A notificationUUID that arrived again with different content; the first
-- stored stays authoritative.
CREATE TABLE notification_conflicts (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_uuid     TEXT COLLATE "C"   NOT NULL,
    received_at           BIGINT NOT NULL,
    signed_payload        TEXT COLLATE "C"   NOT NULL,
    signed_payload_sha256 BYTEA  GENERATED ALWAYS AS (payload_digest(signed_payload)) STORED,
    payload               JSONB  NOT NULL
);
CREATE UNIQUE INDEX notification_conflicts_payload ON notification_conflicts (notification_uuid, signed_payload_sha256);

-- Derived from notifications (and Apple's evidence) by the ledger; `rebuild`
-- recomputes all of it.
CREATE TABLE ledger_items (
    kind                    TEXT COLLATE "C"   NOT NULL,
    item_id                 TEXT COLLATE "C"   NOT NULL,
    original_transaction_id TEXT COLLATE "C"   NOT NULL,
    bundle_id               TEXT COLLATE "C",
    environment             TEXT COLLATE "C",
    product_id              TEXT COLLATE "C",
    app_account_token       TEXT COLLATE "C",
    status                  TEXT COLLATE "C"   NOT NULL,
    expires_date            BIGINT,
    last_signed_date        BIGINT NOT NULL,
    state                   JSONB  NOT NULL,   -- ledger::State
    PRIMARY KEY (kind, item_id)
);
CREATE INDEX ledger_items_app_account_token ON ledger_items (app_account_token);
CREATE INDEX ledger_items_original_transaction_id ON ledger_items (original_transaction_id);

CREATE TABLE refunds (
    notification_uuid       TEXT COLLATE "C"   PRIMARY KEY,
    kind                    TEXT COLLATE "C"   NOT NULL,
    item_id                 TEXT COLLATE "C"   NOT NULL,
    notification_type       TEXT COLLATE "C"   NOT NULL,
    transaction_id          TEXT COLLATE "C",
    original_transaction_id TEXT COLLATE "C"   NOT NULL,
    product_id              TEXT COLLATE "C",
    bundle_id               TEXT COLLATE "C",
    environment             TEXT COLLATE "C",
    revocation_date         BIGINT,
    revocation_reason       BIGINT,
    revocation_type         TEXT COLLATE "C",
    revocation_percentage   BIGINT,
    price                   BIGINT,
    currency                TEXT COLLATE "C",
    signed_date             BIGINT NOT NULL,
    refund_date             BIGINT NOT NULL,
    reversed_at             BIGINT,
    reversed_by             TEXT COLLATE "C"
);
CREATE INDEX refunds_newest ON refunds (refund_date DESC, notification_uuid DESC);
CREATE INDEX refunds_item ON refunds (kind, item_id);
CREATE INDEX refunds_original_transaction_id ON refunds (original_transaction_id);

CREATE TABLE expirations (
    notification_uuid       TEXT COLLATE "C"   PRIMARY KEY,
    kind                    TEXT COLLATE "C"   NOT NULL,
    item_id                 TEXT COLLATE "C"   NOT NULL,
    subtype                 TEXT COLLATE "C",
    transaction_id          TEXT COLLATE "C",
    original_transaction_id TEXT COLLATE "C"   NOT NULL,
    product_id              TEXT COLLATE "C",
    bundle_id               TEXT COLLATE "C",
    environment             TEXT COLLATE "C",
    expires_date            BIGINT,
    signed_date             BIGINT NOT NULL
);
CREATE INDEX expirations_item ON expirations (kind, item_id);
CREATE INDEX expirations_original_transaction_id ON expirations (original_transaction_id);

-- What the inconsistency checker found; one open finding per (kind, subject).
CREATE TABLE findings (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                    TEXT COLLATE "C"   NOT NULL,
    subject                 TEXT COLLATE "C"   NOT NULL,
    original_transaction_id TEXT COLLATE "C",
    bundle_id               TEXT COLLATE "C",
    environment             TEXT COLLATE "C",
    detail                  TEXT COLLATE "C"   NOT NULL,
    first_seen              BIGINT NOT NULL,
    last_seen               BIGINT NOT NULL,
    resolved_at             BIGINT,
    resolution              TEXT COLLATE "C"
);
CREATE UNIQUE INDEX findings_open ON findings (kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX findings_kind ON findings (kind, resolved_at);

CREATE TABLE unfolded_notifications (
    notification_uuid       TEXT COLLATE "C" PRIMARY KEY,
    original_transaction_id TEXT COLLATE "C",
    reason                  TEXT COLLATE "C" NOT NULL
);

CREATE TABLE notification_send_attempts (
    notification_uuid TEXT COLLATE "C"   PRIMARY KEY,
    send_attempts     JSONB  NOT NULL,
    fetched_at        BIGINT NOT NULL
);

CREATE TABLE backfill_runs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bundle_id        TEXT COLLATE "C"    NOT NULL,
    environment      TEXT COLLATE "C"    NOT NULL,
    start_date       BIGINT  NOT NULL,
    end_date         BIGINT  NOT NULL,
    until_given      BIGINT,
    only_failures    BOOLEAN NOT NULL,
    pagination_token TEXT COLLATE "C",
    fetched          BIGINT  NOT NULL DEFAULT 0,
    stored           BIGINT  NOT NULL DEFAULT 0,
    duplicates       BIGINT  NOT NULL DEFAULT 0,
    rejected         BIGINT  NOT NULL DEFAULT 0,
    started_at       BIGINT  NOT NULL,
    finished_at      BIGINT
);
CREATE INDEX backfill_runs_request ON backfill_runs (bundle_id, environment, start_date, only_failures);

CREATE TABLE apple_evidence (
    evidence_id             TEXT COLLATE "C"   PRIMARY KEY,
    source                  TEXT COLLATE "C"   NOT NULL,
    original_transaction_id TEXT COLLATE "C",
    transaction_id          TEXT COLLATE "C",
    signed_date             BIGINT NOT NULL,
    fetched_at              BIGINT NOT NULL,
    bundle_id               TEXT COLLATE "C",
    environment             TEXT COLLATE "C",
    signed_data             JSONB  NOT NULL,
    payload                 JSONB  NOT NULL
);
CREATE INDEX apple_evidence_original ON apple_evidence (original_transaction_id);
CREATE INDEX apple_evidence_transaction ON apple_evidence (transaction_id);

-- /health's probe: written the way a notification is.
CREATE TABLE write_probe (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at BIGINT  NOT NULL,
    filler    BYTEA   NOT NULL
);

-- Totals for /metrics, kept by triggers. Several instances insert at once:
-- one counter row would make every insert wait for the last one's commit,
-- so each database session adds to a row of its own (its backend pid) and
-- a scrape sums them.
CREATE TABLE totals (
    name  TEXT COLLATE "C" NOT NULL,
    shard INTEGER NOT NULL,
    value BIGINT  NOT NULL,
    PRIMARY KEY (name, shard)
);
CREATE TABLE open_findings (
    kind  TEXT COLLATE "C" NOT NULL,
    shard INTEGER NOT NULL,
    open  BIGINT  NOT NULL,
    PRIMARY KEY (kind, shard)
);

CREATE FUNCTION count_total(counter TEXT, delta BIGINT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO totals (name, shard, value) VALUES (counter, pg_backend_pid(), delta)
    ON CONFLICT (name, shard) DO UPDATE SET value = totals.value + delta;
$$;
CREATE FUNCTION count_open_finding(finding_kind TEXT, delta BIGINT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO open_findings (kind, shard, open) VALUES (finding_kind, pg_backend_pid(), delta)
    ON CONFLICT (kind, shard) DO UPDATE SET open = open_findings.open + delta;
$$;

CREATE FUNCTION notifications_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM count_total(TG_TABLE_NAME, 1);
    ELSE
        PERFORM count_total(TG_TABLE_NAME, -1);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER notifications_counted AFTER INSERT OR DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_counted();
CREATE TRIGGER quarantined_counted AFTER INSERT OR DELETE ON quarantined_notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_counted();

CREATE FUNCTION findings_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.resolved_at IS NULL THEN
        PERFORM count_open_finding(OLD.kind, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.resolved_at IS NULL THEN
        PERFORM count_open_finding(NEW.kind, 1);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER findings_counted AFTER INSERT OR UPDATE OF resolved_at, kind OR DELETE ON findings
    FOR EACH ROW EXECUTE FUNCTION findings_counted();

-- Which instance runs the periodic jobs (check, backfill, reconcile): a
-- lease, renewed while it runs and taken over when it lapses.
CREATE TABLE job_leases (
    job         TEXT COLLATE "C"   PRIMARY KEY,
    holder      TEXT COLLATE "C"   NOT NULL,
    expires_at  BIGINT NOT NULL
);
