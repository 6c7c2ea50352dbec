-- Signed-in console users. The cookie carries a random token; only its
-- SHA-256 is kept, so a copy of the database signs nobody in. In the
-- database, so that a session works on every instance.
CREATE TABLE console_sessions (
    token_sha256 TEXT COLLATE "C" PRIMARY KEY,
    user_name    TEXT COLLATE "C" NOT NULL,
    csrf_token   TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_name);

-- Failed sign-ins, counted per user name and per address over a window.
CREATE TABLE console_login_failures (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name TEXT COLLATE "C" NOT NULL,
    address   TEXT COLLATE "C" NOT NULL,
    failed_at BIGINT NOT NULL
);
CREATE INDEX console_login_failures_user ON console_login_failures (user_name, failed_at);
CREATE INDEX console_login_failures_address ON console_login_failures (address, failed_at);
