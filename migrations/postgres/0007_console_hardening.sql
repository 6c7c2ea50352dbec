-- User names are unique regardless of case (see the SQLite schema for why
-- earlier duplicates are renamed).
UPDATE console_users AS later SET name = later.name || '~' || later.created_at
WHERE EXISTS (
    SELECT 1 FROM console_users AS earlier
    WHERE lower(earlier.name) = lower(later.name)
      AND (earlier.created_at, earlier.name) < (later.created_at, later.name)
);
CREATE UNIQUE INDEX console_users_name_nocase ON console_users (lower(name));

-- The key that signs the sign-in form's token, shared by every instance.
CREATE TABLE console_secrets (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);

-- appAccountTokens in lower case (see the SQLite schema).
UPDATE ledger_items SET app_account_token = lower(app_account_token)
WHERE app_account_token <> lower(app_account_token);
