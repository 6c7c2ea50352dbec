-- Who may open the support console: an argon2id hash per user (the PHC
-- string, salt and parameters included), never the password.
CREATE TABLE console_users (
    name          TEXT    PRIMARY KEY,
    role          TEXT    NOT NULL CHECK (role IN ('support', 'admin')),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
