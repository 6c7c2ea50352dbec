//! Leases of the periodic jobs on PostgreSQL (statements in
//! store/sql/leases.rs).

use sqlx::PgConnection;

crate::store::sql::leases::leases!(PgConnection);
