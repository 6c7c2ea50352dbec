-- Signed-in console users. The cookie carries a random token; only its
-- SHA-256 is kept, so a copy of the database signs nobody in.
CREATE TABLE console_sessions (
    token_sha256 TEXT    PRIMARY KEY,
    user_name    TEXT    NOT NULL,
    csrf_token   TEXT    NOT NULL,   -- every form that changes something carries it
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_name);

-- Failed sign-ins, counted per user name and per address over a window.
CREATE TABLE console_login_failures (
    id        INTEGER PRIMARY KEY,
    user_name TEXT    NOT NULL,
    address   TEXT    NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX console_login_failures_user ON console_login_failures (user_name, failed_at);
CREATE INDEX console_login_failures_address ON console_login_failures (address, failed_at);
