//! A batch writer's notifications in as few statements as each backend
//! allows (store/batch.rs folds them): their inserts and their items'
//! loads, then their items' saves with what each fold tells.

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Decode, QueryBuilder, Row as _, Type};

use crate::ledger::{ItemKey, State};
use crate::model::{Environment, Subtype};
use crate::store::fold_tx::{LedgerTx, Loaded, LoadedState};
use crate::store::outbox::{EventRow, LoadedTold, Tell, ToldBefore};
use crate::store::{NewNotification, Recorded};

use super::items::{push_items_with, tokens_of};
use super::ledger_tx::{INSERT_NOTIFICATION_COLUMNS, ROWS_PER_STATEMENT};
use super::outbox::{push_events, push_told};
use super::{ArgExt as _, BindOn, Conn, JsonText};

/// Two statements however many notifications: the inserts (RETURNING
/// those that were new), then the new ones' items with what was told of
/// them. Each statement is a hand-over to SQLite's worker thread and
/// back, which waits its turn behind the requests being verified.
pub(super) async fn sqlite_record_and_load_all(
    conn: &mut SqliteConnection,
    ns: &[(&NewNotification, Option<&ItemKey>)],
) -> Result<Vec<(Recorded, Option<Loaded>)>, sqlx::Error> {
    let mut stored = std::collections::HashSet::new();
    for chunk in ns.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::new(INSERT_NOTIFICATION_COLUMNS);
        insert.push_values(chunk, |mut row, (n, _)| {
            push_notification(&mut row, n);
        });
        insert.push(" ON CONFLICT (notification_uuid) DO NOTHING RETURNING notification_uuid");
        let uuids: Vec<String> = insert.build_query_scalar().fetch_all(&mut *conn).await?;
        stored.extend(uuids);
    }
    let mut results: Vec<(Recorded, Option<Loaded>)> = ns
        .iter()
        .map(|(n, _)| {
            let recorded = if stored.contains(&n.notification_uuid) {
                Recorded::Stored
            } else {
                Recorded::Duplicate
            };
            (recorded, None)
        })
        .collect();
    // Each new notification's item, with the customer it names, by its
    // place in `ns`.
    let asks: Vec<(usize, &ItemKey, Option<&str>)> = ns
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| stored.contains(&n.notification_uuid))
        .filter_map(|(i, (n, item))| Some((i, (*item)?, event_customer(n))))
        .collect();
    for chunk in asks.chunks(ROWS_PER_STATEMENT) {
        let mut load = QueryBuilder::new("WITH k(i, kind, item_id, customer) AS (");
        load.push_values(chunk, |mut row, (i, item, customer)| {
            row.arg(i64::try_from(*i).unwrap_or(i64::MAX))
                .arg(item.kind())
                .arg(item.id())
                .arg(*customer);
        });
        load.push(
            ") SELECT k.i, CAST(l.state AS TEXT), CAST(t.answer AS TEXT), t.sequence,
                 t.told_at, t.changes_at, l.app_transaction_id,
                 (SELECT c.rescinded_date FROM consents c
                  WHERE c.app_transaction_id = l.app_transaction_id),
                 (SELECT c.rescinded_date FROM consents c
                  WHERE c.app_transaction_id = k.customer)
             FROM k
             LEFT JOIN ledger_items l ON l.kind = k.kind AND l.item_id = k.item_id
             LEFT JOIN told_answers t ON t.item_key = k.kind || ':' || k.item_id",
        );
        for row in load.build().fetch_all(&mut *conn).await? {
            let i: i64 = row.try_get(0)?;
            let asked = usize::try_from(i)
                .ok()
                .and_then(|i| Some((ns.get(i)?, results.get_mut(i)?)));
            let Some(((n, _), (_, loaded))) = asked else {
                return Err(sqlx::Error::Protocol(format!(
                    "an item was loaded for notification {i}, which was not asked for"
                )));
            };
            *loaded = Some(loaded_from(&row, 1, event_customer(n))?);
        }
    }
    Ok(results)
}

/// One statement: record_notification_told called for each
/// notification in turn (in the batch's order, which is its items'
/// lock order), each call seeing what the ones before it wrote.
pub(super) async fn postgres_record_and_load_all(
    conn: &mut PgConnection,
    ns: &[(&NewNotification, Option<&ItemKey>)],
) -> Result<Vec<(Recorded, Option<Loaded>)>, sqlx::Error> {
    let texts = |f: &dyn Fn(&NewNotification) -> Option<&str>| -> Vec<Option<&str>> {
        ns.iter().map(|(n, _)| f(n)).collect()
    };
    let numbers = |f: &dyn Fn(&NewNotification) -> Option<i64>| -> Vec<Option<i64>> {
        ns.iter().map(|(n, _)| f(n)).collect()
    };
    let rows = sqlx::query(
        "SELECT r.stored, r.item_state, r.told_answer, r.told_sequence, r.told_moment,
             r.told_changes, r.state_customer, r.state_customer_consent,
             r.event_customer_consent
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[],
                 $6::text[], $7::text[], $8::int8[], $9::text[], $10::text[],
                 $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])
             WITH ORDINALITY AS a(uuid, type, subtype, signed_date, received_at,
                 environment, bundle_id, app_apple_id, original_transaction_id,
                 transaction_id, signed_payload, payload, item_kind, item_id,
                 event_customer, ord)
         CROSS JOIN LATERAL record_notification_told(a.uuid, a.type, a.subtype,
             a.signed_date, a.received_at, a.environment, a.bundle_id, a.app_apple_id,
             a.original_transaction_id, a.transaction_id, a.signed_payload,
             CAST(a.payload AS jsonb), a.item_kind, a.item_id, a.event_customer) r
         ORDER BY a.ord",
    )
    .bind(texts(&|n| Some(n.notification_uuid.as_str())))
    .bind(texts(&|n| Some(n.notification_type.as_str())))
    .bind(texts(&|n| n.subtype.as_ref().map(Subtype::as_str)))
    .bind(numbers(&|n| n.signed_date))
    .bind(numbers(&|n| Some(n.received_at)))
    .bind(texts(&|n| n.environment.as_ref().map(Environment::as_str)))
    .bind(texts(&|n| n.bundle_id.as_deref()))
    .bind(numbers(&|n| n.app_apple_id))
    .bind(texts(&|n| n.original_transaction_id.as_deref()))
    .bind(texts(&|n| n.transaction_id.as_deref()))
    .bind(texts(&|n| Some(n.signed_payload.as_str())))
    .bind(texts(&|n| Some(n.payload.as_str())))
    .bind(
        ns.iter()
            .map(|(_, item)| item.map(ItemKey::kind))
            .collect::<Vec<_>>(),
    )
    .bind(
        ns.iter()
            .map(|(_, item)| item.map(ItemKey::id))
            .collect::<Vec<_>>(),
    )
    .bind(texts(&|n| event_customer(n)))
    .fetch_all(&mut *conn)
    .await?;
    // A row short is caught where the rows are taken (store/batch.rs).
    rows.iter()
        .zip(ns)
        .map(|(row, (n, item))| recorded_from(row, item.is_some(), event_customer(n)))
        .collect()
}

/// On PostgreSQL one statement (the items, their tokens and their
/// events written in its WITH, the answers told by its INSERT), on
/// SQLite four; more only past [`ROWS_PER_STATEMENT`] rows of a kind.
pub(super) async fn save_states_telling<C: Conn + LedgerTx>(
    tx: &mut C,
    items: &[(&ItemKey, &State, Option<&Tell<'_>>)],
) -> Result<(), sqlx::Error> {
    let states: Vec<(&ItemKey, &State)> = items.iter().map(|(i, s, _)| (*i, *s)).collect();
    let tokens = tokens_of(&states);
    let tells: Vec<(&ItemKey, &Tell<'_>)> = items
        .iter()
        .filter_map(|(item, _, tell)| Some((*item, (*tell)?)))
        .collect();
    let events: Vec<&EventRow<'_>> = tells.iter().flat_map(|(_, t)| &t.events).collect();
    let within = |n: usize| n <= ROWS_PER_STATEMENT;
    if C::WRITES_IN_WITH
        && within(states.len())
        && within(tokens.len())
        && within(events.len())
        && within(tells.len())
    {
        let mut query = QueryBuilder::new("");
        push_items_with(&mut query, &states, &tokens)?;
        if !events.is_empty() {
            query.push(", events AS (");
            push_events(&mut query, events.iter().copied());
            query.push(") ");
        }
        if tells.is_empty() {
            // A statement needs a body after its WITH.
            query.push("SELECT 1");
        } else {
            push_told(&mut query, tells.iter().map(|(item, t)| (*item, t.told())));
        }
        return query.build().execute(tx.ex()).await.map(drop);
    }
    tx.save_states(&states).await?;
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::new("");
        push_events(&mut query, chunk.iter().copied());
        query.build().execute(tx.ex()).await?;
    }
    for chunk in tells.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::new("");
        push_told(&mut query, chunk.iter().map(|(item, t)| (*item, t.told())));
        query.build().execute(tx.ex()).await?;
    }
    Ok(())
}

/// A notification's twelve columns as a row of a multi-row INSERT
/// ([`INSERT_NOTIFICATION_COLUMNS`]).
pub(super) fn push_notification<DB: BindOn>(
    row: &mut sqlx::query_builder::Separated<'_, DB, &'static str>,
    n: &NewNotification,
) {
    row.arg(n.notification_uuid.as_str())
        .arg(n.notification_type.as_str())
        .arg(n.subtype.as_ref().map(Subtype::as_str))
        .arg(n.signed_date)
        .arg(n.received_at)
        .arg(n.environment.as_ref().map(Environment::as_str))
        .arg(n.bundle_id.as_deref())
        .arg(n.app_apple_id)
        .arg(n.original_transaction_id.as_deref())
        .arg(n.transaction_id.as_deref())
        .arg(n.signed_payload.as_str())
        .arg(JsonText(&n.payload));
}

/// The customer a notification names: the appTransactionId of its
/// transaction, whose withdrawn consent its fold may tell.
pub(super) fn event_customer(n: &NewNotification) -> Option<&str> {
    n.event
        .data
        .as_ref()
        .and_then(|data| data.signed_transaction_info.as_ref())
        .and_then(|t| t.app_transaction_id.as_deref())
}

/// A notification's record from record_notification_told's row.
pub(super) fn recorded_from(
    row: &sqlx::postgres::PgRow,
    has_item: bool,
    event_customer: Option<&str>,
) -> Result<(Recorded, Option<Loaded>), sqlx::Error> {
    let stored: bool = row.try_get(0)?;
    if !stored {
        return Ok((Recorded::Duplicate, None));
    }
    if !has_item {
        return Ok((Recorded::Stored, None));
    }
    Ok((Recorded::Stored, Some(loaded_from(row, 1, event_customer)?)))
}

/// An item as loaded with its notification: from column `first` of `row`,
/// its state, what was told of it (answer, sequence, moment, when time
/// changes it), the customer its state names, and when that customer and
/// the notification's (`event_customer`) withdrew consent.
fn loaded_from<R: sqlx::Row>(
    row: &R,
    first: usize,
    event_customer: Option<&str>,
) -> Result<Loaded, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: Decode<'r, R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database>,
    String: Type<R::Database>,
    i64: Type<R::Database>,
{
    let state: Option<String> = row.try_get(first)?;
    let told = LoadedTold {
        answer: row.try_get(first + 1)?,
        sequence: row.try_get::<Option<i64>, _>(first + 2)?.unwrap_or(0),
        told_at: row.try_get(first + 3)?,
        changes_at: row.try_get(first + 4)?,
        consent_rescinded_date: None,
    };
    let state_customer: Option<String> = row.try_get(first + 5)?;
    let consents = [
        (state_customer, row.try_get::<Option<i64>, _>(first + 6)?),
        (
            event_customer.map(str::to_owned),
            row.try_get::<Option<i64>, _>(first + 7)?,
        ),
    ]
    .into_iter()
    .filter_map(|(customer, consent)| Some((customer?, consent)))
    .collect();
    Ok(Loaded {
        state: LoadedState::from_json(state.as_deref()),
        told: Some(ToldBefore { told, consents }),
    })
}
