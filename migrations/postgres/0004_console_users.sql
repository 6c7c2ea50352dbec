-- Who may open the support console: an argon2id hash per user (the PHC
-- string, salt and parameters included), never the password. In the
-- database, so that every instance knows them.
CREATE TABLE console_users (
    name          TEXT COLLATE "C" PRIMARY KEY,
    role          TEXT COLLATE "C" NOT NULL CHECK (role IN ('support', 'admin')),
    password_hash TEXT COLLATE "C" NOT NULL,
    created_at    BIGINT NOT NULL
);
