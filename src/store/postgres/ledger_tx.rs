//! The statements the fold needs ([`LedgerTx`]), on PostgreSQL, inside the
//! caller's transaction (written once in store/sql/ledger_tx.rs).

use sqlx::PgConnection;

/// Holds the item until the transaction ends (a transaction-scoped
/// advisory lock on its key): instances folding notifications of one
/// subscription at once take turns, and what the later reads includes the
/// earlier's notification. The same key as record_notification's
/// (migrations/postgres/0003).
async fn lock_item(connection: &mut PgConnection, item: &ItemKey) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))")
        .bind(item.kind())
        .bind(item.id())
        .execute(&mut *connection)
        .await
        .map(drop)
}

/// One round trip instead of three (insert, lock, read): the database
/// function record_notification does them in turn, each statement seeing
/// what was committed before it began.
async fn record_and_load(
    connection: &mut PgConnection,
    n: &NewNotification,
    item: Option<&ItemKey>,
) -> Result<(Recorded, Option<LoadedState>), sqlx::Error> {
    use sqlx::Row as _;
    let row = bind_notification(
        sqlx::query(
            "SELECT stored, item_state FROM record_notification(
                 $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14)",
        ),
        n,
    )
    .bind(item.map(ItemKey::kind))
    .bind(item.map(ItemKey::id))
    .fetch_one(&mut *connection)
    .await?;
    let (stored, state): (bool, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
    if !stored {
        return Ok((Recorded::Duplicate, None));
    }
    Ok((
        Recorded::Stored,
        item.map(|_| LoadedState::from_json(state.as_deref())),
    ))
}

crate::store::sql::ledger_tx::ledger_tx!(PgConnection, jsonb = "::jsonb");
