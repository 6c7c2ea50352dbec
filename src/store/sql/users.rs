//! The support console's users, written once for every backend
//! (conventions in ledger_tx.rs).

macro_rules! users {
    ($conn:ty) => {
        use $crate::store::ConsoleUser;

        /// Adds a user unless one has that name; true when added.
        pub(super) async fn add_console_user(
            conn: &mut $conn,
            user: &ConsoleUser,
            password_hash: &str,
        ) -> Result<bool, sqlx::Error> {
            let added = sqlx::query(
                "INSERT INTO console_users (name, role, password_hash, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&user.name)
            .bind(&user.role)
            .bind(password_hash)
            .bind(user.created_at)
            .execute(&mut *conn)
            .await?;
            Ok(added.rows_affected() == 1)
        }

        /// True when there was such a user.
        pub(super) async fn remove_console_user(
            conn: &mut $conn,
            name: &str,
        ) -> Result<bool, sqlx::Error> {
            let removed = sqlx::query("DELETE FROM console_users WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            Ok(removed.rows_affected() == 1)
        }

        /// Every user, by name.
        pub(super) async fn console_users(
            conn: &mut $conn,
        ) -> Result<Vec<ConsoleUser>, sqlx::Error> {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT CAST(name AS TEXT), CAST(role AS TEXT), created_at
                 FROM console_users ORDER BY name",
            )
            .fetch_all(&mut *conn)
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
    };
}
pub(in crate::store) use users;
