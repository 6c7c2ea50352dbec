//! The support console's part of the store: its users, sessions, sign-in
//! attempts, secrets, access log, and what its pages read (a customer's
//! events, a stored payload, delivery health).

use super::*;

impl Store {
    /// Adds a console user with the hash of its password, unless one has
    /// that name; true when added.
    pub async fn add_console_user(
        &self,
        user: &ConsoleUser,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        on_write!(self, |tx| {
            Sql::add_console_user(tx, user, password_hash).await
        })
    }

    /// True when there was such a user.
    pub async fn remove_console_user(&self, name: &str) -> Result<bool, StoreError> {
        on_write!(self, |tx| Sql::remove_console_user(tx, name).await)
    }

    /// Every console user, by name.
    pub async fn console_users(&self) -> Result<Vec<ConsoleUser>, StoreError> {
        on_read!(self, |conn| Sql::console_users(conn).await)
    }

    /// A console user's name as added, role and password hash, by the name
    /// in any case.
    pub async fn console_login(
        &self,
        name: &str,
    ) -> Result<Option<(String, String, String)>, StoreError> {
        on_read!(self, |conn| Sql::console_login(conn, name).await)
    }

    /// Whether any console user exists (the console is off until one does).
    pub async fn has_console_users(&self) -> Result<bool, StoreError> {
        on_read!(self, |conn| Sql::has_console_users(conn).await)
    }

    /// Starts a session: the SHA-256 of its cookie token, never the token.
    pub async fn create_console_session(
        &self,
        token_sha256: &str,
        user_name: &str,
        csrf_token: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_write!(self, |tx| {
            Sql::create_console_session(tx, token_sha256, user_name, csrf_token, now).await
        })
    }

    /// The session, seen now, unless it was idle since before `idle_since`
    /// or began before `created_since` (then it is over and deleted) or its
    /// user was removed.
    pub async fn console_session(
        &self,
        token_sha256: &str,
        idle_since: i64,
        created_since: i64,
        now: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        on_write!(self, |tx| {
            Sql::console_session(tx, token_sha256, idle_since, created_since, now).await
        })
    }

    pub async fn delete_console_session(&self, token_sha256: &str) -> Result<(), StoreError> {
        on_write!(self, |tx| {
            Sql::delete_console_session(tx, token_sha256).await
        })
    }

    /// Reserves a sign-in attempt before its password is checked: `None`
    /// when `allowed` failed or reserved attempts since `since` are counted
    /// for `user_key` or for `address` already (then refuse), else the id of
    /// the attempt, which counts as failed until it is forgotten. Attempts
    /// checked at once on any instance cannot all slip under the limit.
    pub async fn reserve_login_attempt(
        &self,
        user_key: &str,
        address: &str,
        now: i64,
        since: i64,
        allowed: i64,
    ) -> Result<Option<i64>, StoreError> {
        on_write!(self, |tx| {
            // Attempts for one user name, or from one address, reserve one
            // after another on every instance.
            tx.lock_sign_in(user_key, address).await?;
            Sql::reserve_login_attempt(tx, user_key, address, now, since, allowed).await
        })
    }

    /// Takes back a reserved attempt whose password was right.
    pub async fn forget_login_attempt(&self, id: i64) -> Result<(), StoreError> {
        on_write!(self, |tx| Sql::forget_login_attempt(tx, id).await)
    }

    /// The secret called `name`, made from `fresh` the first time any
    /// instance asks: every instance then shares it.
    pub async fn console_secret(&self, name: &str, fresh: &str) -> Result<String, StoreError> {
        on_write!(self, |tx| Sql::console_secret(tx, name, fresh).await)
    }

    /// An item's stored notifications and Apple's answers, in no order.
    pub async fn item_events(&self, item: &ItemKey) -> Result<Vec<StoredEvent>, StoreError> {
        on_read!(self, |conn| Sql::item_events(conn, item).await)
    }

    /// Writes down that a console user opened a page.
    pub async fn note_console_access(&self, entry: &AccessEntry) -> Result<(), StoreError> {
        on_write!(self, |tx| Sql::note_console_access(tx, entry).await)
    }

    /// The console's access log, newest first: entries with an id below
    /// `before`, of one user or of all.
    pub async fn console_access_log(
        &self,
        user_name: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AccessEntry>, StoreError> {
        on_read!(self, |conn| {
            Sql::console_access_log(conn, user_name, before, limit).await
        })
    }

    /// Adds (start of the hour, code, count) to the refused deliveries.
    pub async fn add_rejections(&self, counts: &[(i64, String, i64)]) -> Result<(), StoreError> {
        on_write!(self, |tx| Sql::add_rejections(tx, counts).await)
    }

    /// A notification's (received or quarantined) or an Apple answer's
    /// decoded payload, by notificationUUID or evidence id.
    pub async fn stored_payload(&self, id: &str) -> Result<Option<StoredPayload>, StoreError> {
        on_read!(self, |conn| Sql::stored_payload(conn, id).await)
    }

    /// Deliveries since `since`: received per hour, refused, quarantined,
    /// recovered by backfill.
    pub async fn delivery_health(&self, since: i64) -> Result<DeliveryHealth, StoreError> {
        on_read!(self, |conn| Sql::delivery_health(conn, since).await)
    }
}
