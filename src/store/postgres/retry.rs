//! Retrying what PostgreSQL refused for a conflict with a concurrent
//! transaction (serialization failure, deadlock), used by the store's
//! writes and by the batch writers alike.

use crate::store::StoreError;

/// Attempts at a write that PostgreSQL refused for a conflict with another.
const ATTEMPTS: usize = 4;

pub(super) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::unavailable(e)
}

/// Whether attempt number `attempt` (from 1), which failed with `error`,
/// should be made again: a conflict with a concurrent transaction, which
/// trying again resolves, a few times. For the store's writes and the
/// batch writers alike.
pub(in crate::store) fn again(error: &sqlx::Error, attempt: usize) -> bool {
    let again = retryable(error) && attempt < ATTEMPTS;
    if again {
        tracing::debug!(%error, attempt, "write met a concurrent one; again");
    }
    again
}

/// A conflict with a concurrent transaction, which trying again resolves.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}
