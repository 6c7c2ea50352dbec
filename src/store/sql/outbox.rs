//! The outbox's statements ([`OutboxTx`]), written once for every backend
//! (conventions in sql/mod.rs): the answers told, the entitlement events,
//! and the consumption requests opened with their notifications.

use sqlx::{ColumnIndex, Database, Decode, QueryBuilder, Type};

use crate::ledger::ItemKey;
use crate::model::{InAppOwnershipType, ProductType};
use crate::store::outbox::{EventRow, LoadedTold, NewConsumptionRequest, NewTold, OutboxTx};

use super::ledger_tx::ROWS_PER_STATEMENT;
use super::read::item_from;
use super::{ArgExt as _, Conn, JsonText};

/// A told answer's row (all absent before anything was told) with the
/// customer's withdrawn consent.
pub(super) type ToldRow = (
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// `INSERT INTO entitlement_events ...` of `events` (at most
/// [`ROWS_PER_STATEMENT`]), each kept once: whichever of its keys an event
/// meets (its id, its item's sequence), it is there already.
pub(super) fn push_events<'e, 'a: 'e, DB>(
    query: &mut QueryBuilder<DB>,
    events: impl IntoIterator<Item = &'e EventRow<'a>>,
) where
    DB: super::BindOn,
{
    query.push(
        "INSERT INTO entitlement_events (event_id, kind, item_id, sequence, type, cause, occurred_at, data) ",
    );
    query.push_values(events, |mut row, e| {
        row.arg(e.event_id.as_str())
            .arg(e.item.kind())
            .arg(e.item.id())
            .arg(e.sequence)
            .arg(e.kind)
            .arg(e.cause)
            .arg(e.occurred_at)
            .arg(JsonText(&e.data));
    });
    query.push(" ON CONFLICT DO NOTHING");
}

/// The upsert of the answer told about `item`, after the insert of
/// `events` (at most [`ROWS_PER_STATEMENT`]) in its WITH, which
/// `in_with` says the statement has begun already (only where
/// [`Conn::WRITES_IN_WITH`]).
pub(super) fn push_tell<DB: super::BindOn>(
    query: &mut QueryBuilder<DB>,
    item: &ItemKey,
    told: NewTold<'_>,
    events: &[EventRow<'_>],
    in_with: bool,
) {
    if !events.is_empty() {
        query.push(if in_with {
            ", events AS ("
        } else {
            "WITH events AS ("
        });
        push_events(query, events);
        query.push(") ");
    }
    push_told(query, [(item, told)]);
}

/// The upsert of the answers told about items (distinct, at most
/// [`ROWS_PER_STATEMENT`]).
pub(super) fn push_told<'t, DB: super::BindOn>(
    query: &mut QueryBuilder<DB>,
    told: impl IntoIterator<Item = (&'t ItemKey, NewTold<'t>)>,
) {
    query.push("INSERT INTO told_answers (item_key, answer, sequence, told_at, changes_at) ");
    query.push_values(told, |mut row, (item, told)| {
        row.arg(item_key(item))
            .arg(JsonText(told.answer))
            .arg(told.sequence)
            .arg(told.told_at)
            .arg(told.changes_at);
    });
    query.push(
        " ON CONFLICT (item_key) DO UPDATE SET answer = excluded.answer,
             sequence = excluded.sequence, told_at = excluded.told_at,
             changes_at = excluded.changes_at",
    );
}

/// The SELECT of what was last told of `item` (a row even when nothing
/// was) and of when the customer of `app_transaction_id` withdrew consent.
pub(super) fn push_load_told<DB: super::BindOn>(
    query: &mut QueryBuilder<DB>,
    item: &ItemKey,
    app_transaction_id: Option<&str>,
) {
    query
        .push(
            "SELECT CAST(t.answer AS TEXT), t.sequence, t.told_at, t.changes_at,
                 (SELECT c.rescinded_date FROM consents c WHERE c.app_transaction_id = ",
        )
        .arg(app_transaction_id)
        .push(") FROM (SELECT CAST(")
        .arg(item_key(item))
        .push(" AS TEXT) AS item_key) k LEFT JOIN told_answers t ON t.item_key = k.item_key");
}

pub(super) fn loaded_told(row: ToldRow) -> LoadedTold {
    let (answer, sequence, told_at, changes_at, consent_rescinded_date) = row;
    LoadedTold {
        answer,
        sequence: sequence.unwrap_or(0),
        told_at,
        changes_at,
        consent_rescinded_date,
    }
}

/// An item's key in told_answers: one column, so copy-store can page it.
fn item_key(item: &ItemKey) -> String {
    format!("{}:{}", item.kind(), item.id())
}

impl<C> OutboxTx for C
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> bool: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    async fn load_told(
        &mut self,
        item: &ItemKey,
        app_transaction_id: Option<&str>,
    ) -> Result<LoadedTold, sqlx::Error> {
        let mut query = QueryBuilder::new("");
        push_load_told(&mut query, item, app_transaction_id);
        let row: ToldRow = query.build_query_as().fetch_one(self.ex()).await?;
        Ok(loaded_told(row))
    }

    /// On PostgreSQL the events and the answer in one statement (the
    /// events inserted in its WITH): a fold that changes an answer writes
    /// both, and each round trip costs both sides.
    async fn tell(
        &mut self,
        item: &ItemKey,
        told: NewTold<'_>,
        events: &[EventRow<'_>],
    ) -> Result<(), sqlx::Error> {
        let together = C::WRITES_IN_WITH && events.len() <= ROWS_PER_STATEMENT;
        if !together {
            for batch in events.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new("");
                push_events(&mut insert, batch);
                insert.build().execute(self.ex()).await?;
            }
        }
        let mut query = QueryBuilder::new("");
        push_tell(
            &mut query,
            item,
            told,
            if together { events } else { &[] },
            false,
        );
        query.build().execute(self.ex()).await.map(drop)
    }

    async fn customer_items(
        &mut self,
        app_transaction_id: &str,
    ) -> Result<Vec<ItemKey>, sqlx::Error> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT kind, item_id FROM ledger_items WHERE app_transaction_id = $1
             ORDER BY kind, item_id",
        )
        .arg(app_transaction_id)
        .fetch_all(self.ex())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, id)| item_from(&kind, id))
            .collect())
    }

    async fn told_due(&mut self, now: i64, limit: i64) -> Result<Vec<(ItemKey, i64)>, sqlx::Error> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT item_key, changes_at FROM told_answers
             WHERE changes_at IS NOT NULL AND changes_at <= $1
             ORDER BY changes_at, item_key LIMIT $2",
        )
        .arg(now)
        .arg(limit)
        .fetch_all(self.ex())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, at)| {
                let (kind, id) = key.split_once(':')?;
                Some((item_from(kind, id.to_owned()), at))
            })
            .collect())
    }

    async fn seeding(&mut self) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT after FROM told_seeding WHERE one = 1")
            .fetch_optional(self.ex())
            .await
    }

    async fn items_after(
        &mut self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(ItemKey, String)>, sqlx::Error> {
        let (kind, id) = after.split_once(':').unwrap_or(("", ""));
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT kind, item_id, CAST(state AS TEXT) FROM ledger_items
             WHERE kind > $1 OR (kind = $1 AND item_id > $2)
             ORDER BY kind, item_id LIMIT $3",
        )
        .arg(kind)
        .arg(id)
        .arg(limit)
        .fetch_all(self.ex())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, id, state)| (item_from(&kind, id), state))
            .collect())
    }

    async fn seed_told(
        &mut self,
        item: &ItemKey,
        answer: &str,
        at: i64,
        changes_at: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO told_answers (item_key, answer, sequence, told_at, changes_at)
             VALUES ($1, $2, 0, $3, $4) ON CONFLICT (item_key) DO NOTHING",
        )
        .arg(item_key(item))
        .arg(JsonText(answer))
        .arg(at)
        .arg(changes_at)
        .execute(self.ex())
        .await
        .map(drop)
    }

    async fn seeded(&mut self, through: Option<&str>) -> Result<(), sqlx::Error> {
        match through {
            Some(after) => sqlx::query("UPDATE told_seeding SET after = $1 WHERE one = 1")
                .arg(after)
                .execute(self.ex())
                .await
                .map(drop),
            None => sqlx::query("DELETE FROM told_seeding")
                .execute(self.ex())
                .await
                .map(drop),
        }
    }

    async fn open_consumption_request(
        &mut self,
        r: &NewConsumptionRequest<'_>,
    ) -> Result<(), sqlx::Error> {
        let t = r.transaction;
        sqlx::query(
            "INSERT INTO consumption_requests (notification_uuid, transaction_id, original_transaction_id,
                 bundle_id, environment, product_id, product_type, in_app_ownership_type, app_account_token,
                 purchase_date, expires_date, reason, requested_at, received_at, deadline, state, why)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'OPEN', NULL)
             ON CONFLICT (notification_uuid) DO NOTHING",
        )
        .arg(r.notification_uuid)
        .arg(r.transaction_id)
        .arg(t.original_transaction_id.as_deref())
        .arg(r.bundle_id)
        .arg(r.environment)
        .arg(t.product_id.as_deref())
        .arg(t.product_type.as_ref().map(ProductType::as_str))
        .arg(t.in_app_ownership_type.as_ref().map(InAppOwnershipType::as_str))
        .arg(t.app_account_token.as_deref())
        .arg(t.purchase_date)
        .arg(t.expires_date)
        .arg(r.reason)
        .arg(r.requested_at)
        .arg(r.received_at)
        .arg(r.deadline)
        .execute(self.ex())
        .await?;
        Ok(())
    }
}
