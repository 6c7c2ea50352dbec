-- User names are unique regardless of case: `ana` and `ANA` are one user.
-- Should two such users exist already, the later ones are renamed with a
-- `~` and the time they were added (a name no one can sign in with), so
-- that the index can be built and `user list` shows what to tidy up.
UPDATE console_users SET name = name || '~' || created_at
WHERE EXISTS (
    SELECT 1 FROM console_users AS earlier
    WHERE lower(earlier.name) = lower(console_users.name)
      AND (earlier.created_at, earlier.name) < (console_users.created_at, console_users.name)
);
CREATE UNIQUE INDEX console_users_name_nocase ON console_users (lower(name));

-- The key that signs the sign-in form's token, made once and shared by
-- every instance, so that a form served by one is accepted by another.
CREATE TABLE console_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- An appAccountToken is a UUID, compared regardless of case and kept in
-- lower case: tokens folded before this are found by their lower case form
-- (the states themselves follow with `rebuild`).
UPDATE ledger_items SET app_account_token = lower(app_account_token)
WHERE app_account_token <> lower(app_account_token);
