//! The ledger's tables on SQLite: applying a stored notification, folding an
//! item again, rebuilding, and the queries behind the API.

use std::collections::BTreeMap;

use sqlx::{Row, SqliteConnection};

use super::{ExpirationEntry, HistoryEntry, LedgerItem, RefundEntry, RefundFilter};
use crate::ledger::{self, can_apply_after, Effect, Event, ItemKey, State};

/// Folds a just-stored notification into its item's state, in the caller's
/// transaction: on top of the state when it sorts last, else by folding all of
/// the item's notifications again.
pub(super) async fn apply_notification(
    tx: &mut SqliteConnection,
    event: &Event,
) -> Result<(), sqlx::Error> {
    let Some(item) = event.item() else {
        return Ok(());
    };
    match load_state(&mut *tx, &item).await? {
        Some(state) if can_apply_after(&state, event) => {
            let (state, effects) = ledger::apply(Some(state), &item, event);
            save(&mut *tx, &item, &state, &effects).await
        }
        _ => refold(tx, &item).await,
    }
}

async fn load_state(
    tx: &mut SqliteConnection,
    item: &ItemKey,
) -> Result<Option<State>, sqlx::Error> {
    let row: Option<String> =
        sqlx::query_scalar("SELECT state FROM ledger_items WHERE kind = ?1 AND item_id = ?2")
            .bind(item.kind())
            .bind(item.id())
            .fetch_optional(&mut *tx)
            .await?;
    // An unreadable state (written by an older version) is folded again.
    Ok(row.and_then(|json| serde_json::from_str(&json).ok()))
}

async fn refold(tx: &mut SqliteConnection, item: &ItemKey) -> Result<(), sqlx::Error> {
    let sql = match item {
        ItemKey::Subscription(_) => {
            "SELECT payload FROM notifications WHERE original_transaction_id = ?1"
        }
        ItemKey::Purchase(_) => "SELECT payload FROM notifications WHERE transaction_id = ?1",
    };
    let payloads: Vec<String> = sqlx::query_scalar(sql)
        .bind(item.id())
        .fetch_all(&mut *tx)
        .await?;
    let events = payloads
        .iter()
        .filter_map(|p| Event::parse(p).ok())
        .collect();
    delete_records(&mut *tx, item).await?;
    if let Some((state, effects)) = ledger::fold(item, events) {
        save(tx, item, &state, &effects).await?;
    }
    Ok(())
}

async fn delete_records(tx: &mut SqliteConnection, item: &ItemKey) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM refunds WHERE kind = ?1 AND item_id = ?2",
        "DELETE FROM expirations WHERE kind = ?1 AND item_id = ?2",
    ] {
        sqlx::query(sql)
            .bind(item.kind())
            .bind(item.id())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn save(
    tx: &mut SqliteConnection,
    item: &ItemKey,
    state: &State,
    effects: &[Effect],
) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(state).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let original_transaction_id = state
        .original_transaction_id
        .as_deref()
        .unwrap_or(item.id());
    sqlx::query(
        "INSERT INTO ledger_items (kind, item_id, original_transaction_id, bundle_id, environment,
             product_id, app_account_token, status, expires_date, last_signed_date, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (kind, item_id) DO UPDATE SET
             original_transaction_id = excluded.original_transaction_id, bundle_id = excluded.bundle_id,
             environment = excluded.environment, product_id = excluded.product_id,
             app_account_token = excluded.app_account_token, status = excluded.status,
             expires_date = excluded.expires_date, last_signed_date = excluded.last_signed_date,
             state = excluded.state",
    )
    .bind(item.kind())
    .bind(item.id())
    .bind(original_transaction_id)
    .bind(&state.bundle_id)
    .bind(&state.environment)
    .bind(&state.product_id)
    .bind(&state.app_account_token)
    .bind(state.status.as_str())
    .bind(state.expires_date())
    .bind(state.last_signed_date)
    .bind(json)
    .execute(&mut *tx)
    .await?;
    for effect in effects {
        match effect {
            Effect::Refund(r) => {
                sqlx::query(
                    "INSERT INTO refunds (notification_uuid, kind, item_id, notification_type, transaction_id,
                         original_transaction_id, product_id, bundle_id, environment, revocation_date,
                         revocation_reason, revocation_type, revocation_percentage, price, currency,
                         signed_date, refund_date)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
                     ON CONFLICT (notification_uuid) DO NOTHING",
                )
                .bind(&r.notification_uuid)
                .bind(item.kind())
                .bind(item.id())
                .bind(&r.notification_type)
                .bind(&r.transaction_id)
                .bind(r.original_transaction_id.as_deref().unwrap_or(original_transaction_id))
                .bind(&r.product_id)
                .bind(&r.bundle_id)
                .bind(&r.environment)
                .bind(r.revocation_date)
                .bind(r.revocation_reason)
                .bind(&r.revocation_type)
                .bind(r.revocation_percentage)
                .bind(r.price)
                .bind(&r.currency)
                .bind(r.signed_date)
                .bind(r.revocation_date.unwrap_or(r.signed_date))
                .execute(&mut *tx)
                .await?;
            }
            Effect::RefundReversed {
                transaction_id,
                reversed_at,
                reversed_by,
            } => {
                sqlx::query(
                    "UPDATE refunds SET reversed_at = ?1, reversed_by = ?2
                     WHERE kind = ?3 AND item_id = ?4 AND transaction_id = ?5
                       AND reversed_at IS NULL AND signed_date <= ?1",
                )
                .bind(reversed_at)
                .bind(reversed_by)
                .bind(item.kind())
                .bind(item.id())
                .bind(transaction_id)
                .execute(&mut *tx)
                .await?;
            }
            Effect::Expiration(e) => {
                sqlx::query(
                    "INSERT INTO expirations (notification_uuid, kind, item_id, subtype, transaction_id,
                         original_transaction_id, product_id, bundle_id, environment, expires_date, signed_date)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (notification_uuid) DO NOTHING",
                )
                .bind(&e.notification_uuid)
                .bind(item.kind())
                .bind(item.id())
                .bind(&e.subtype)
                .bind(&e.transaction_id)
                .bind(e.original_transaction_id.as_deref().unwrap_or(original_transaction_id))
                .bind(&e.product_id)
                .bind(&e.bundle_id)
                .bind(&e.environment)
                .bind(e.expires_date)
                .bind(e.signed_date)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    Ok(())
}

/// Rebuilds the items of the next `chunk` original transaction ids after
/// `after`, in the caller's transaction. Returns the last id done (None when
/// there are no more) and how many notifications were folded.
pub(super) async fn rebuild_chunk(
    tx: &mut SqliteConnection,
    after: &str,
    chunk: i64,
) -> Result<(Option<String>, u64), sqlx::Error> {
    let last: Option<String> = sqlx::query_scalar(
        "SELECT max(original_transaction_id) FROM (SELECT DISTINCT original_transaction_id FROM notifications
         WHERE original_transaction_id > ?1 ORDER BY original_transaction_id LIMIT ?2)",
    )
    .bind(after)
    .bind(chunk)
    .fetch_one(&mut *tx)
    .await?;
    let Some(last) = last else {
        // Past the last notification: derived rows left here belong to no
        // stored notification (a corrupted table, or an item a rule change
        // now files elsewhere) and must not survive a rebuild.
        for sql in [
            "DELETE FROM ledger_items WHERE original_transaction_id > ?1",
            "DELETE FROM refunds WHERE original_transaction_id > ?1",
            "DELETE FROM expirations WHERE original_transaction_id > ?1",
        ] {
            sqlx::query(sql).bind(after).execute(&mut *tx).await?;
        }
        return Ok((None, 0));
    };
    for sql in [
        "DELETE FROM ledger_items WHERE original_transaction_id > ?1 AND original_transaction_id <= ?2",
        "DELETE FROM refunds WHERE original_transaction_id > ?1 AND original_transaction_id <= ?2",
        "DELETE FROM expirations WHERE original_transaction_id > ?1 AND original_transaction_id <= ?2",
    ] {
        sqlx::query(sql).bind(after).bind(&last).execute(&mut *tx).await?;
    }
    let payloads: Vec<String> = sqlx::query_scalar(
        "SELECT payload FROM notifications WHERE original_transaction_id > ?1 AND original_transaction_id <= ?2",
    )
    .bind(after)
    .bind(&last)
    .fetch_all(&mut *tx)
    .await?;
    let folded = payloads.len() as u64;
    let events = payloads
        .iter()
        .filter_map(|p| Event::parse(p).ok())
        .collect();
    for (item, (state, effects)) in ledger::fold_all(events) {
        save(&mut *tx, &item, &state, &effects).await?;
    }
    Ok((Some(last), folded))
}

fn item_from(kind: &str, id: String) -> ItemKey {
    if kind == "purchase" {
        ItemKey::Purchase(id)
    } else {
        ItemKey::Subscription(id)
    }
}

pub(super) fn ledger_item(row: &sqlx::sqlite::SqliteRow) -> Result<LedgerItem, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    Ok(LedgerItem {
        item: item_from(&kind, row.try_get("item_id")?),
        state: serde_json::from_str(&state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

pub(super) async fn items_where(
    conn: &mut SqliteConnection,
    column: &str,
    value: &str,
) -> Result<Vec<LedgerItem>, sqlx::Error> {
    let sql = match column {
        "subscription" => "SELECT kind, item_id, state FROM ledger_items WHERE kind = 'subscription' AND item_id = ?1",
        "app_account_token" => "SELECT kind, item_id, state FROM ledger_items WHERE app_account_token = ?1",
        "original_transaction_id" => {
            "SELECT kind, item_id, state FROM ledger_items WHERE original_transaction_id = ?1"
        }
        "transaction_id" => {
            "SELECT kind, item_id, state FROM ledger_items WHERE original_transaction_id IN
                 (SELECT original_transaction_id FROM notifications WHERE transaction_id = ?1)"
        }
        _ => return Ok(Vec::new()),
    };
    let rows = sqlx::query(sql).bind(value).fetch_all(&mut *conn).await?;
    rows.iter().map(ledger_item).collect()
}

pub(super) async fn history(
    conn: &mut SqliteConnection,
    original_transaction_id: &str,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT notification_uuid, notification_type, subtype, signed_date, received_at, transaction_id, payload
         FROM notifications WHERE original_transaction_id = ?1 ORDER BY signed_date, notification_uuid",
    )
    .bind(original_transaction_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let payload: String = row.try_get("payload")?;
            let transaction = serde_json::from_str::<serde_json::Value>(&payload)
                .ok()
                .and_then(|mut p| {
                    p.pointer_mut("/data/signedTransactionInfo")
                        .map(serde_json::Value::take)
                });
            Ok(HistoryEntry {
                notification_uuid: row.try_get("notification_uuid")?,
                notification_type: row.try_get("notification_type")?,
                subtype: row.try_get("subtype")?,
                signed_date: row.try_get("signed_date")?,
                received_at: row.try_get("received_at")?,
                transaction_id: row.try_get("transaction_id")?,
                transaction,
            })
        })
        .collect()
}

pub(super) async fn refunds(
    conn: &mut SqliteConnection,
    filter: &RefundFilter,
) -> Result<Vec<RefundEntry>, sqlx::Error> {
    // Newest first, cursor-paginated on (refund_date, notification_uuid).
    let (cursor_date, cursor_uuid) = filter.cursor.clone().unwrap_or((i64::MAX, String::new()));
    let rows = sqlx::query(
        "SELECT * FROM refunds
         WHERE (?1 IS NULL OR bundle_id = ?1) AND (?2 IS NULL OR product_id = ?2)
           AND (?3 IS NULL OR refund_date >= ?3) AND (?4 IS NULL OR refund_date < ?4)
           AND (refund_date < ?5 OR (refund_date = ?5 AND (?6 = '' OR notification_uuid < ?6)))
           AND (?8 IS NULL OR original_transaction_id = ?8)
         ORDER BY refund_date DESC, notification_uuid DESC
         LIMIT ?7",
    )
    .bind(&filter.bundle_id)
    .bind(&filter.product_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(cursor_date)
    .bind(cursor_uuid)
    .bind(filter.limit)
    .bind(&filter.original_transaction_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RefundEntry {
                notification_uuid: row.try_get("notification_uuid")?,
                notification_type: row.try_get("notification_type")?,
                transaction_id: row.try_get("transaction_id")?,
                original_transaction_id: row.try_get("original_transaction_id")?,
                product_id: row.try_get("product_id")?,
                bundle_id: row.try_get("bundle_id")?,
                environment: row.try_get("environment")?,
                revocation_date: row.try_get("revocation_date")?,
                revocation_reason: row.try_get("revocation_reason")?,
                revocation_type: row.try_get("revocation_type")?,
                revocation_percentage: row.try_get("revocation_percentage")?,
                price: row.try_get("price")?,
                currency: row.try_get("currency")?,
                signed_date: row.try_get("signed_date")?,
                refund_date: row.try_get("refund_date")?,
                reversed_at: row.try_get("reversed_at")?,
                reversed_by: row.try_get("reversed_by")?,
            })
        })
        .collect()
}

pub(super) async fn expirations(
    conn: &mut SqliteConnection,
    original_transaction_id: &str,
) -> Result<Vec<ExpirationEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT notification_uuid, subtype, transaction_id, product_id, expires_date, signed_date
         FROM expirations WHERE original_transaction_id = ?1 ORDER BY signed_date, notification_uuid",
    )
    .bind(original_transaction_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ExpirationEntry {
                notification_uuid: row.try_get("notification_uuid")?,
                subtype: row.try_get("subtype")?,
                transaction_id: row.try_get("transaction_id")?,
                product_id: row.try_get("product_id")?,
                expires_date: row.try_get("expires_date")?,
                signed_date: row.try_get("signed_date")?,
            })
        })
        .collect()
}

/// A snapshot of every derived table, for checking that rebuild equals
/// incremental application.
pub(super) async fn snapshot(
    conn: &mut SqliteConnection,
) -> Result<BTreeMap<String, Vec<String>>, sqlx::Error> {
    let mut out = BTreeMap::new();
    for (table, sql) in [
        ("ledger_items", "SELECT kind || '|' || item_id || '|' || state FROM ledger_items ORDER BY kind, item_id"),
        (
            "refunds",
            "SELECT json_array(notification_uuid, kind, item_id, notification_type, transaction_id,
                 original_transaction_id, product_id, bundle_id, environment, revocation_date, revocation_reason,
                 revocation_type, revocation_percentage, price, currency, signed_date, refund_date, reversed_at,
                 reversed_by) FROM refunds ORDER BY notification_uuid",
        ),
        (
            "expirations",
            "SELECT json_array(notification_uuid, kind, item_id, subtype, transaction_id, original_transaction_id,
                 product_id, bundle_id, environment, expires_date, signed_date) FROM expirations ORDER BY notification_uuid",
        ),
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut *conn).await?;
        out.insert(table.to_owned(), rows);
    }
    Ok(out)
}
