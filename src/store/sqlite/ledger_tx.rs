//! The statements the fold needs ([`LedgerTx`]), on SQLite, inside the
//! caller's transaction (written once in store/sql/ledger_tx.rs).

use sqlx::SqliteConnection;

/// SQLite has one writer, which folds one notification after another:
/// nothing else can fold an item at the same time.
async fn lock_item(_: &mut SqliteConnection, _: &ItemKey) -> Result<(), sqlx::Error> {
    Ok(())
}

/// Two statements: in-process SQLite has no round trip to save.
async fn record_and_load(
    connection: &mut SqliteConnection,
    n: &NewNotification,
    item: Option<&ItemKey>,
) -> Result<(Recorded, Option<LoadedState>), sqlx::Error> {
    let recorded = connection.insert_notification(n, None).await?;
    let loaded = match (recorded, item) {
        (Recorded::Stored, Some(item)) => Some(connection.load_state(item).await?),
        _ => None,
    };
    Ok((recorded, loaded))
}

crate::store::sql::ledger_tx::ledger_tx!(SqliteConnection, jsonb = "");
