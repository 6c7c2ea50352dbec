//! Retrying what PostgreSQL refused for a conflict with a concurrent
//! transaction (serialization failure, deadlock), used by the store and by
//! the batch writers alike.

use crate::store::StoreError;

/// Attempts at a write that PostgreSQL refused for a conflict with another.
pub(super) const ATTEMPTS: usize = 4;

/// Runs `$body` (which may `.await` and `?`) in a transaction on `$tx`,
/// again when it met a concurrent one; the store's error otherwise. A macro
/// rather than a function taking a closure: a closure borrowing the
/// connection cannot yet give a `Send` future for every borrow.
macro_rules! in_transaction {
    ($store:expr, $tx:ident, $body:block) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut transaction = $store
                .pool()
                .begin()
                .await
                .map_err($crate::store::postgres::retry::unavailable)?;
            let done = {
                let $tx: &mut sqlx::PgConnection = &mut transaction;
                async { $body }.await
            };
            let done = match done {
                Ok(value) => transaction.commit().await.map(|()| value),
                Err(error) => Err(error),
            };
            match done {
                Ok(value) => break Ok(value),
                Err(error)
                    if $crate::store::postgres::retry::retryable(&error)
                        && attempt < $crate::store::postgres::retry::ATTEMPTS =>
                {
                    tracing::debug!(%error, attempt, "write met a concurrent one; again");
                }
                Err(error) => break Err($crate::store::postgres::retry::unavailable(error)),
            }
        }
    }};
}
pub(super) use in_transaction;

pub(super) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::unavailable(e)
}

/// A conflict with a concurrent transaction, which trying again resolves.
pub(super) fn retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}
