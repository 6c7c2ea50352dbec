//! The queries behind the API on SQLite (written once in store/sql/read.rs).

use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;

crate::store::sql::read::read!(SqliteConnection, SqliteRow, json_array = "json_array");
