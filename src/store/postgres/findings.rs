//! The inconsistency checker's reads and writes on PostgreSQL (written once
//! in store/sql/findings.rs).

use sqlx::PgConnection;

crate::store::sql::findings::findings!(PgConnection);
