//! The support console's users, their sessions and failed sign-ins,
//! written once for every backend (conventions in sql/mod.rs).

use crate::store::{ConsoleSession, ConsoleUser};
use sqlx::{ColumnIndex, Database, Decode, Type};

use super::{ArgExt as _, Conn, RowsAffected as _, Sql};

impl<C> Sql<C>
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    /// Adds a user unless one has that name in any case; true when
    /// added. (No conflict target: the one that matters is the unique
    /// index on `lower(name)`.)
    pub(in crate::store) async fn add_console_user(
        conn: &mut C,
        user: &ConsoleUser,
        password_hash: &str,
    ) -> Result<bool, sqlx::Error> {
        let added = sqlx::query(
            "INSERT INTO console_users (name, role, password_hash, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .arg(&user.name)
        .arg(&user.role)
        .arg(password_hash)
        .arg(user.created_at)
        .execute(conn.ex())
        .await?;
        Ok(added.rows_affected() == 1)
    }

    /// True when there was such a user (its name in any case).
    pub(in crate::store) async fn remove_console_user(
        conn: &mut C,
        name: &str,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query(
            "DELETE FROM console_sessions WHERE user_name IN
             (SELECT name FROM console_users WHERE lower(name) = lower($1))",
        )
        .arg(name)
        .execute(conn.ex())
        .await?;
        let removed = sqlx::query("DELETE FROM console_users WHERE lower(name) = lower($1)")
            .arg(name)
            .execute(conn.ex())
            .await?;
        Ok(removed.rows_affected() == 1)
    }

    /// Every user, by name.
    pub(in crate::store) async fn console_users(
        conn: &mut C,
    ) -> Result<Vec<ConsoleUser>, sqlx::Error> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT CAST(name AS TEXT), CAST(role AS TEXT), created_at
             FROM console_users ORDER BY name",
        )
        .fetch_all(conn.ex())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, role, created_at)| ConsoleUser {
                name,
                role,
                created_at,
            })
            .collect())
    }

    /// A user's name as added, role and password hash, by its name in
    /// any case.
    pub(in crate::store) async fn console_login(
        conn: &mut C,
        name: &str,
    ) -> Result<Option<(String, String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT CAST(name AS TEXT), CAST(role AS TEXT), CAST(password_hash AS TEXT)
             FROM console_users WHERE lower(name) = lower($1)",
        )
        .arg(name)
        .fetch_optional(conn.ex())
        .await
    }

    pub(in crate::store) async fn has_console_users(conn: &mut C) -> Result<bool, sqlx::Error> {
        let any: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM console_users LIMIT 1) AS any_user",
        )
        .fetch_one(conn.ex())
        .await?;
        Ok(any > 0)
    }

    pub(in crate::store) async fn create_console_session(
        conn: &mut C,
        token_sha256: &str,
        user_name: &str,
        csrf_token: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO console_sessions (token_sha256, user_name, csrf_token, created_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $4)",
        )
        .arg(token_sha256)
        .arg(user_name)
        .arg(csrf_token)
        .arg(now)
        .execute(conn.ex())
        .await
        .map(drop)
    }

    /// The session with this token's hash, of a user that still exists,
    /// seen at `now` if it was seen since `idle_since` and began since
    /// `created_since`; one that is over is deleted.
    pub(in crate::store) async fn console_session(
        conn: &mut C,
        token_sha256: &str,
        idle_since: i64,
        created_since: i64,
        now: i64,
    ) -> Result<Option<ConsoleSession>, sqlx::Error> {
        sqlx::query(
            "DELETE FROM console_sessions
             WHERE token_sha256 = $1 AND (last_seen_at < $2 OR created_at < $3)",
        )
        .arg(token_sha256)
        .arg(idle_since)
        .arg(created_since)
        .execute(conn.ex())
        .await?;
        sqlx::query("UPDATE console_sessions SET last_seen_at = $2 WHERE token_sha256 = $1")
            .arg(token_sha256)
            .arg(now)
            .execute(conn.ex())
            .await?;
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT CAST(s.user_name AS TEXT), CAST(u.role AS TEXT), CAST(s.csrf_token AS TEXT)
             FROM console_sessions s JOIN console_users u ON u.name = s.user_name
             WHERE s.token_sha256 = $1",
        )
        .arg(token_sha256)
        .fetch_optional(conn.ex())
        .await?;
        Ok(row.map(|(user_name, role, csrf_token)| ConsoleSession {
            user_name,
            role,
            csrf_token,
        }))
    }

    pub(in crate::store) async fn delete_console_session(
        conn: &mut C,
        token_sha256: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_sessions WHERE token_sha256 = $1")
            .arg(token_sha256)
            .execute(conn.ex())
            .await
            .map(drop)
    }

    /// Reserves a sign-in attempt for `user_key` from `address`: unless
    /// `allowed` failures (reservations included) are already counted
    /// for either since `since`, notes one now and returns its id. The
    /// attempt counts as failed until [`forget_login_attempt`] takes it
    /// back, so that attempts checked at once cannot all pass the limit.
    /// The caller serializes reservations (SQLite's single writer,
    /// PostgreSQL's advisory locks).
    pub(in crate::store) async fn reserve_login_attempt(
        conn: &mut C,
        user_key: &str,
        address: &str,
        now: i64,
        since: i64,
        allowed: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query("DELETE FROM console_login_failures WHERE failed_at < $1")
            .arg(since)
            .execute(conn.ex())
            .await?;
        let (by_user, by_address): (i64, i64) = sqlx::query_as(
            "SELECT
                 (SELECT count(*) FROM console_login_failures WHERE user_name = $1 AND failed_at >= $3),
                 (SELECT count(*) FROM console_login_failures WHERE address = $2 AND failed_at >= $3)",
        )
        .arg(user_key)
        .arg(address)
        .arg(since)
        .fetch_one(conn.ex())
        .await?;
        if by_user >= allowed || by_address >= allowed {
            return Ok(None);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO console_login_failures (user_name, address, failed_at)
             VALUES ($1, $2, $3) RETURNING id",
        )
        .arg(user_key)
        .arg(address)
        .arg(now)
        .fetch_one(conn.ex())
        .await?;
        Ok(Some(id))
    }

    /// Takes back a reserved attempt: the password was right.
    pub(in crate::store) async fn forget_login_attempt(
        conn: &mut C,
        id: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_login_failures WHERE id = $1")
            .arg(id)
            .execute(conn.ex())
            .await
            .map(drop)
    }

    /// The key that signs sign-in forms: the stored one, or `fresh`
    /// when none is stored yet (then kept for every instance).
    pub(in crate::store) async fn console_secret(
        conn: &mut C,
        name: &str,
        fresh: &str,
    ) -> Result<String, sqlx::Error> {
        sqlx::query(
            "INSERT INTO console_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .arg(name)
        .arg(fresh)
        .execute(conn.ex())
        .await?;
        sqlx::query_scalar("SELECT CAST(value AS TEXT) FROM console_secrets WHERE name = $1")
            .arg(name)
            .fetch_one(conn.ex())
            .await
    }
}
