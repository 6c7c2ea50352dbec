//! The queries behind the API on PostgreSQL (written once in
//! store/sql/read.rs).

use sqlx::postgres::PgRow;
use sqlx::PgConnection;

crate::store::sql::read::read!(PgConnection, PgRow, json_array = "json_build_array");
