//! The statements the fold needs ([`LedgerTx`]), on PostgreSQL, inside the
//! caller's transaction (written once in store/sql/ledger_tx.rs).

use sqlx::PgConnection;

/// Holds the item until the transaction ends (a transaction-scoped
/// advisory lock on its key): instances folding notifications of one
/// subscription at once take turns, and what the later reads includes the
/// earlier's notification.
async fn lock_item(connection: &mut PgConnection, item: &ItemKey) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))")
        .bind(item.kind())
        .bind(item.id())
        .execute(&mut *connection)
        .await
        .map(drop)
}

crate::store::sql::ledger_tx::ledger_tx!(PgConnection, jsonb = "::jsonb");
