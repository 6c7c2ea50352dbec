//! The inconsistency checker's reads and writes on SQLite (written once
//! in store/sql/findings.rs).

use sqlx::SqliteConnection;

crate::store::sql::findings::findings!(SqliteConnection);
