//! The statements the fold needs ([`LedgerTx`]), on SQLite, inside the
//! caller's transaction (written once in store/sql/ledger_tx.rs).

use sqlx::SqliteConnection;

/// SQLite has one writer, which folds one notification after another:
/// nothing else can fold an item at the same time.
async fn lock_item(_: &mut SqliteConnection, _: &ItemKey) -> Result<(), sqlx::Error> {
    Ok(())
}

crate::store::sql::ledger_tx::ledger_tx!(SqliteConnection, jsonb = "");
