//! The outbox's statements ([`OutboxTx`]), written once for every backend
//! (conventions in sql/mod.rs): the answers told, the entitlement events,
//! and the consumption requests opened with their notifications.

use sqlx::{ColumnIndex, Database, Decode, QueryBuilder, Type};

use crate::ledger::ItemKey;
use crate::model::{InAppOwnershipType, ProductType};
use crate::store::outbox::{EventRow, NewConsumptionRequest, OutboxTx};

use super::ledger_tx::ROWS_PER_STATEMENT;
use super::{ArgExt as _, Conn, JsonText};

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
    ) -> Result<Option<(String, i64, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT CAST(answer AS TEXT), sequence, told_at FROM told_answers WHERE item_key = $1",
        )
        .arg(item_key(item))
        .fetch_optional(self.ex())
        .await
    }

    async fn tell(
        &mut self,
        item: &ItemKey,
        answer: &str,
        sequence: i64,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO told_answers (item_key, answer, sequence, told_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (item_key) DO UPDATE SET answer = excluded.answer,
                 sequence = excluded.sequence, told_at = excluded.told_at",
        )
        .arg(item_key(item))
        .arg(JsonText(answer))
        .arg(sequence)
        .arg(at)
        .execute(self.ex())
        .await
        .map(drop)
    }

    async fn insert_events(&mut self, events: &[EventRow<'_>]) -> Result<(), sqlx::Error> {
        for batch in events.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::new(
                "INSERT INTO entitlement_events (event_id, kind, item_id, sequence, type, cause, occurred_at, data) ",
            );
            query.push_values(batch, |mut row, e| {
                row.arg(e.event_id.as_str())
                    .arg(e.item.kind())
                    .arg(e.item.id())
                    .arg(e.sequence)
                    .arg(e.kind)
                    .arg(e.cause)
                    .arg(e.occurred_at)
                    .arg(JsonText(&e.data));
            });
            // Whichever of its keys an event meets (its id, its item's
            // sequence), it is there already.
            query.push(" ON CONFLICT DO NOTHING");
            query.build().execute(self.ex()).await?;
        }
        Ok(())
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
