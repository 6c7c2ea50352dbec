//! Retrying what PostgreSQL refused for a conflict with a concurrent
//! transaction (serialization failure, deadlock), used by the store's
//! writes and by the batch writers alike.

use crate::store::StoreError;

/// Attempts at a write that PostgreSQL refused for a conflict with another.
pub(super) const ATTEMPTS: usize = 4;

pub(super) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::unavailable(e)
}

/// A conflict with a concurrent transaction, which trying again resolves.
pub(super) fn retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}
