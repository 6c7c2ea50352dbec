//! The statements the fold needs ([`LedgerTx`]), written once for every
//! backend (conventions in sql/mod.rs): the fold runs on any connection
//! that is a [`Conn`]. The dialect adds `lock_item`, which holds an item for
//! the rest of the transaction where several writers may fold it at once,
//! and `record_and_load` (a notification stored and its item loaded).

/// What the fold reads of notifications and of Apple's answers, with
/// whether an earlier fold kept each as unfolded (one statement, no second
/// look at unfolded_notifications).
macro_rules! stored_where {
    ($notifications:literal, $evidence:literal) => {
        concat!(
            "SELECT n.notification_uuid, n.original_transaction_id, CAST(n.payload AS TEXT), u.id IS NOT NULL
             FROM notifications n
             LEFT JOIN (SELECT notification_uuid AS id FROM unfolded_notifications) u
                 ON u.id = n.notification_uuid
             WHERE ",
            $notifications,
            "
             UNION ALL
             SELECT e.evidence_id, e.original_transaction_id, CAST(e.payload AS TEXT), u.id IS NOT NULL
             FROM apple_evidence e
             LEFT JOIN (SELECT notification_uuid AS id FROM unfolded_notifications) u
                 ON u.id = e.evidence_id
             WHERE ",
            $evidence
        )
    };
}

use sqlx::{ColumnIndex, Database, Decode, QueryBuilder, Type};

use crate::ledger::{ItemKey, State};
use crate::model::{Environment, Subtype};
use crate::store::fold_tx::{
    ExpirationRow, LedgerTx, Loaded, LoadedState, RefundRow, StoredPayload, Unfolded,
};
use crate::store::outbox::{LoadedTold, OutboxTx as _, Tell};
use crate::store::{NewEvidence, NewNotification, QuarantineReason, Recorded};

use super::items::{push_items, push_items_with, push_tokens, states_json, tokens_of};
use super::outbox::{loaded_told, push_load_told, push_tell, ToldRow};
use super::{ArgExt as _, BindOn, Conn, JsonText, RowsAffected as _};

/// A notification's twelve columns, in the order [`bind_notification`] and
/// sql/batch.rs's `push_notification` bind them.
macro_rules! notification_columns {
    () => {
        "notification_uuid, notification_type, subtype, signed_date, received_at, environment,
         bundle_id, app_apple_id, original_transaction_id, transaction_id, signed_payload, payload"
    };
}

const INSERT_NOTIFICATION: &str = concat!(
    "INSERT INTO notifications (",
    notification_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (notification_uuid) DO NOTHING"
);

/// A multi-row insert of notifications, up to its VALUES (sql/batch.rs's
/// `push_notification` each row).
pub(super) const INSERT_NOTIFICATION_COLUMNS: &str =
    concat!("INSERT INTO notifications (", notification_columns!(), ") ");

const INSERT_QUARANTINED: &str = "INSERT INTO quarantined_notifications (notification_uuid,
        notification_type, subtype, signed_date, received_at, environment, bundle_id, app_apple_id,
        original_transaction_id, transaction_id, signed_payload, payload, reason_code, reason)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
    ON CONFLICT (notification_uuid) DO NOTHING";

/// Rows per multi-row INSERT: the widest (refunds, 19 columns) stays well
/// under the bound parameters a statement may have (SQLite 32,766).
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// A notification's twelve columns as parameters $1 to $12, in the
/// order every statement that stores one names them.
pub(super) fn bind_notification<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments>,
    n: &'q NewNotification,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: BindOn,
{
    query
        .arg(&n.notification_uuid)
        .arg(n.notification_type.as_str())
        .arg(n.subtype.as_ref().map(Subtype::as_str))
        .arg(n.signed_date)
        .arg(n.received_at)
        .arg(n.environment.as_ref().map(Environment::as_str))
        .arg(&n.bundle_id)
        .arg(n.app_apple_id)
        .arg(&n.original_transaction_id)
        .arg(&n.transaction_id)
        .arg(&n.signed_payload)
        .arg(JsonText(&n.payload))
}

fn stored_payloads(rows: Vec<(String, Option<String>, String, bool)>) -> Vec<StoredPayload> {
    rows.into_iter()
        .map(
            |(notification_uuid, original_transaction_id, payload, was_unfolded)| StoredPayload {
                notification_uuid,
                original_transaction_id,
                payload,
                was_unfolded,
            },
        )
        .collect()
}

impl<C> LedgerTx for C
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> bool: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    /// The dialect's [`Conn::record_and_load`].
    async fn record_and_load(
        &mut self,
        n: &NewNotification,
        item: Option<&ItemKey>,
    ) -> Result<(Recorded, Option<Loaded>), sqlx::Error> {
        Conn::record_and_load(self, n, item).await
    }

    /// The dialect's [`Conn::record_and_load_all`].
    async fn record_and_load_all(
        &mut self,
        ns: &[(&NewNotification, Option<&ItemKey>)],
    ) -> Result<Vec<(Recorded, Option<Loaded>)>, sqlx::Error> {
        Conn::record_and_load_all(self, ns).await
    }

    /// On PostgreSQL one statement, on SQLite four (sql/batch.rs).
    async fn save_states_telling(
        &mut self,
        items: &[(&ItemKey, &State, Option<&Tell<'_>>)],
    ) -> Result<(), sqlx::Error> {
        super::batch::save_states_telling(self, items).await
    }

    async fn insert_notification(
        &mut self,
        n: &NewNotification,
        quarantine: Option<&QuarantineReason>,
    ) -> Result<Recorded, sqlx::Error> {
        let mut query = bind_notification(
            sqlx::query(if quarantine.is_some() {
                INSERT_QUARANTINED
            } else {
                INSERT_NOTIFICATION
            }),
            n,
        );
        if let Some(reason) = quarantine {
            query = query.arg(&reason.code).arg(&reason.message);
        }
        let result = query.execute(self.ex()).await?;
        Ok(if result.rows_affected() == 1 {
            Recorded::Stored
        } else {
            Recorded::Duplicate
        })
    }

    async fn stored_version(
        &mut self,
        uuid: &str,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT signed_payload, CAST(payload AS TEXT) FROM notifications WHERE notification_uuid = $1",
        )
        .arg(uuid)
        .fetch_optional(self.ex())
        .await
    }

    async fn insert_conflict(&mut self, n: &NewNotification) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO notification_conflicts (notification_uuid, received_at, signed_payload, payload)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .arg(&n.notification_uuid)
        .arg(n.received_at)
        .arg(&n.signed_payload)
        .arg(JsonText(&n.payload))
        .execute(self.ex())
        .await?;
        Ok(())
    }

    async fn insert_evidence(&mut self, e: &NewEvidence) -> Result<bool, sqlx::Error> {
        let payload = serde_json::to_string(&e.event)
            .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
        let result = sqlx::query(
            "INSERT INTO apple_evidence (evidence_id, source, original_transaction_id, transaction_id,
                 signed_date, fetched_at, bundle_id, environment, signed_data, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (evidence_id) DO NOTHING",
        )
        .arg(&e.evidence_id)
        .arg(e.source)
        .arg(&e.original_transaction_id)
        .arg(&e.transaction_id)
        .arg(e.signed_date)
        .arg(e.fetched_at)
        .arg(&e.bundle_id)
        .arg(&e.environment)
        .arg(JsonText(&e.signed_data))
        .arg(JsonText(&payload))
        .execute(self.ex())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_quarantined(&mut self, quarantine_id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM quarantined_notifications WHERE id = $1")
            .arg(quarantine_id)
            .execute(self.ex())
            .await?;
        Ok(())
    }

    /// Locks the item first (`lock_item`, the backend's): what this fold
    /// reads next includes every notification of the item committed before.
    async fn load_state(&mut self, item: &ItemKey) -> Result<LoadedState, sqlx::Error> {
        self.lock_item(item).await?;
        let row: Option<String> = sqlx::query_scalar(
            "SELECT CAST(state AS TEXT) FROM ledger_items WHERE kind = $1 AND item_id = $2",
        )
        .arg(item.kind())
        .arg(item.id())
        .fetch_optional(self.ex())
        .await?;
        Ok(LoadedState::from_json(row.as_deref()))
    }

    async fn item_notifications(
        &mut self,
        item: &ItemKey,
    ) -> Result<Vec<StoredPayload>, sqlx::Error> {
        let sql = match item {
            ItemKey::Subscription(_) => stored_where!(
                "n.original_transaction_id = $1",
                "e.original_transaction_id = $1"
            ),
            ItemKey::Purchase(_) => stored_where!("n.transaction_id = $1", "e.transaction_id = $1"),
        };
        let rows = sqlx::query_as(sql)
            .arg(item.id())
            .fetch_all(self.ex())
            .await?;
        Ok(stored_payloads(rows))
    }

    async fn delete_item_records(&mut self, item: &ItemKey) -> Result<(), sqlx::Error> {
        for sql in [
            "DELETE FROM refunds WHERE kind = $1 AND item_id = $2",
            "DELETE FROM expirations WHERE kind = $1 AND item_id = $2",
        ] {
            sqlx::query(sql)
                .arg(item.kind())
                .arg(item.id())
                .execute(self.ex())
                .await?;
        }
        Ok(())
    }

    /// A statement per 500 rows: a rebuild's chunk saves thousands of items.
    /// A fold of one item goes through [`LedgerTx::save_state_loading_told`].
    async fn save_states(&mut self, items: &[(&ItemKey, &State)]) -> Result<(), sqlx::Error> {
        let json = states_json(items)?;
        for (batch, json) in items
            .chunks(ROWS_PER_STATEMENT)
            .zip(json.chunks(ROWS_PER_STATEMENT))
        {
            let mut query = QueryBuilder::new("");
            push_items(&mut query, batch, json);
            query.build().execute(self.ex()).await?;
        }
        for batch in tokens_of(items).chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::new("");
            push_tokens(&mut query, batch);
            query.build().execute(self.ex()).await?;
        }
        Ok(())
    }

    /// On PostgreSQL one statement: the item and its tokens written in
    /// its WITH, what was told read by its SELECT (told_answers and
    /// consents are not among the tables it writes, so what it reads is
    /// what the transaction held before).
    async fn save_state_loading_told(
        &mut self,
        item: &ItemKey,
        state: &State,
    ) -> Result<LoadedTold, sqlx::Error> {
        let app_transaction_id = state.app_transaction_id.as_deref();
        let items = [(item, state)];
        let tokens = tokens_of(&items);
        if !C::WRITES_IN_WITH || tokens.len() > ROWS_PER_STATEMENT {
            self.save_states(&items).await?;
            return self.load_told(item, app_transaction_id).await;
        }
        let mut query = QueryBuilder::new("");
        push_items_with(&mut query, &items, &tokens)?;
        push_load_told(&mut query, item, app_transaction_id);
        let row: ToldRow = query.build_query_as().fetch_one(self.ex()).await?;
        Ok(loaded_told(row))
    }

    /// On PostgreSQL one statement: the item, its tokens and the events
    /// written in its WITH, the answer told by its INSERT.
    async fn save_state_telling(
        &mut self,
        item: &ItemKey,
        state: &State,
        tell: Option<&Tell<'_>>,
    ) -> Result<(), sqlx::Error> {
        let items = [(item, state)];
        let tokens = tokens_of(&items);
        let events = tell.map_or(0, |t| t.events.len());
        if !C::WRITES_IN_WITH || tokens.len() > ROWS_PER_STATEMENT || events > ROWS_PER_STATEMENT {
            self.save_states(&items).await?;
            return match tell {
                Some(tell) => self.tell(item, tell.told(), &tell.events).await,
                None => Ok(()),
            };
        }
        let mut query = QueryBuilder::new("");
        push_items_with(&mut query, &items, &tokens)?;
        match tell {
            Some(tell) => push_tell(&mut query, item, tell.told(), &tell.events, true),
            // A statement needs a body after its WITH.
            None => {
                query.push("SELECT 1");
            }
        }
        query.build().execute(self.ex()).await.map(drop)
    }

    async fn insert_refunds(&mut self, refunds: &[RefundRow<'_>]) -> Result<(), sqlx::Error> {
        for batch in refunds.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::new(
                "INSERT INTO refunds (notification_uuid, kind, item_id, notification_type, transaction_id,
                     original_transaction_id, product_id, bundle_id, environment, revocation_date,
                     revocation_reason, revocation_type, revocation_percentage, price, currency,
                     signed_date, refund_date, reversed_at, reversed_by, subtype, revoked_seat_quantity,
                     source) ",
            );
            query.push_values(batch, |mut row, r| {
                let refund = r.refund;
                row.arg(refund.notification_uuid.as_str())
                    .arg(r.item.kind())
                    .arg(r.item.id())
                    .arg(refund.notification_type.as_str())
                    .arg(refund.transaction_id.as_deref())
                    .arg(
                        refund
                            .original_transaction_id
                            .as_deref()
                            .unwrap_or(r.original_transaction_id),
                    )
                    .arg(refund.product_id.as_deref())
                    .arg(refund.bundle_id.as_deref())
                    .arg(refund.environment.as_deref())
                    .arg(refund.revocation_date)
                    .arg(refund.revocation_reason)
                    .arg(refund.revocation_type.as_deref())
                    .arg(refund.revocation_percentage)
                    .arg(refund.price)
                    .arg(refund.currency.as_deref())
                    .arg(refund.signed_date)
                    .arg(refund.revocation_date.unwrap_or(refund.signed_date))
                    .arg(r.reversed.map(|(at, _)| at))
                    .arg(r.reversed.map(|(_, by)| by))
                    .arg(refund.subtype.as_deref())
                    .arg(refund.revoked_seat_quantity)
                    .arg(refund.source);
            });
            query.push(" ON CONFLICT (notification_uuid) DO NOTHING");
            query.build().execute(self.ex()).await?;
        }
        Ok(())
    }

    async fn reverse_refunds(
        &mut self,
        item: &ItemKey,
        transaction_id: &str,
        reversed_at: i64,
        reversed_by: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE refunds SET reversed_at = $1, reversed_by = $2
             WHERE kind = $3 AND item_id = $4 AND transaction_id = $5
               AND reversed_at IS NULL AND signed_date <= $1",
        )
        .arg(reversed_at)
        .arg(reversed_by)
        .arg(item.kind())
        .arg(item.id())
        .arg(transaction_id)
        .execute(self.ex())
        .await?;
        Ok(())
    }

    async fn delete_api_refunds(
        &mut self,
        item: &ItemKey,
        transaction_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM refunds WHERE kind = $1 AND item_id = $2 AND transaction_id = $3
               AND source = 'APPLE_API'",
        )
        .arg(item.kind())
        .arg(item.id())
        .arg(transaction_id)
        .execute(self.ex())
        .await?;
        Ok(())
    }

    async fn insert_expirations(
        &mut self,
        expirations: &[ExpirationRow<'_>],
    ) -> Result<(), sqlx::Error> {
        for batch in expirations.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::new(
                "INSERT INTO expirations (notification_uuid, kind, item_id, subtype, transaction_id,
                     original_transaction_id, product_id, bundle_id, environment, expires_date, signed_date) ",
            );
            query.push_values(batch, |mut row, e| {
                let expiration = e.expiration;
                row.arg(expiration.notification_uuid.as_str())
                    .arg(e.item.kind())
                    .arg(e.item.id())
                    .arg(expiration.subtype.as_deref())
                    .arg(expiration.transaction_id.as_deref())
                    .arg(
                        expiration
                            .original_transaction_id
                            .as_deref()
                            .unwrap_or(e.original_transaction_id),
                    )
                    .arg(expiration.product_id.as_deref())
                    .arg(expiration.bundle_id.as_deref())
                    .arg(expiration.environment.as_deref())
                    .arg(expiration.expires_date)
                    .arg(expiration.signed_date);
            });
            query.push(" ON CONFLICT (notification_uuid) DO NOTHING");
            query.build().execute(self.ex()).await?;
        }
        Ok(())
    }

    async fn note_rescinded_consent(
        &mut self,
        app_transaction_id: &str,
        rescinded_date: i64,
        notification_uuid: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO consents (app_transaction_id, rescinded_date, notification_uuid)
             VALUES ($1, $2, $3)
             ON CONFLICT (app_transaction_id) DO UPDATE SET
                 rescinded_date = excluded.rescinded_date, notification_uuid = excluded.notification_uuid
             WHERE excluded.rescinded_date < consents.rescinded_date",
        )
        .arg(app_transaction_id)
        .arg(rescinded_date)
        .arg(notification_uuid)
        .execute(self.ex())
        .await?;
        Ok(())
    }

    async fn note_unknown_shape(
        &mut self,
        n: &NewNotification,
        what: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO unknown_shapes (notification_uuid, what, original_transaction_id, received_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (notification_uuid) DO NOTHING",
        )
        .arg(&n.notification_uuid)
        .arg(what)
        .arg(n.original_transaction_id.as_deref())
        .arg(n.received_at)
        .execute(self.ex())
        .await?;
        Ok(())
    }

    async fn note_unfolded(
        &mut self,
        folded: &[String],
        unfolded: &[Unfolded],
    ) -> Result<(), sqlx::Error> {
        for uuid in folded {
            sqlx::query("DELETE FROM unfolded_notifications WHERE notification_uuid = $1")
                .arg(uuid)
                .execute(self.ex())
                .await?;
        }
        for u in unfolded {
            sqlx::query(
                "INSERT INTO unfolded_notifications (notification_uuid, original_transaction_id, reason)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (notification_uuid) DO UPDATE SET reason = excluded.reason",
            )
            .arg(&u.notification_uuid)
            .arg(&u.original_transaction_id)
            .arg(&u.reason)
            .execute(self.ex())
            .await?;
        }
        Ok(())
    }

    async fn chunk_end(&mut self, after: &str, size: i64) -> Result<Option<String>, sqlx::Error> {
        let end: Option<String> = sqlx::query_scalar(
            "SELECT max(original_transaction_id) FROM (SELECT DISTINCT original_transaction_id FROM notifications
             WHERE original_transaction_id > $1 ORDER BY original_transaction_id LIMIT $2) AS chunk",
        )
        .arg(after)
        .arg(size)
        .fetch_one(self.ex())
        .await?;
        if end.is_some() {
            return Ok(end);
        }
        // Past the notifications: items only Apple's answers speak of (few),
        // in one last chunk.
        sqlx::query_scalar(
            "SELECT max(original_transaction_id) FROM apple_evidence WHERE original_transaction_id > $1",
        )
        .arg(after)
        .fetch_one(self.ex())
        .await
    }

    async fn delete_derived(
        &mut self,
        after: &str,
        through: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let statements = match through {
            Some(_) => [
                "DELETE FROM ledger_items WHERE original_transaction_id > $1 AND original_transaction_id <= $2",
                "DELETE FROM item_tokens WHERE original_transaction_id > $1 AND original_transaction_id <= $2",
                "DELETE FROM refunds WHERE original_transaction_id > $1 AND original_transaction_id <= $2",
                "DELETE FROM expirations WHERE original_transaction_id > $1 AND original_transaction_id <= $2",
            ],
            None => [
                "DELETE FROM ledger_items WHERE original_transaction_id > $1",
                "DELETE FROM item_tokens WHERE original_transaction_id > $1",
                "DELETE FROM refunds WHERE original_transaction_id > $1",
                "DELETE FROM expirations WHERE original_transaction_id > $1",
            ],
        };
        for sql in statements {
            let query = sqlx::query(sql).arg(after);
            match through {
                Some(through) => query.arg(through),
                None => query,
            }
            .execute(self.ex())
            .await?;
        }
        Ok(())
    }

    async fn range_notifications(
        &mut self,
        after: &str,
        through: &str,
    ) -> Result<Vec<StoredPayload>, sqlx::Error> {
        let rows = sqlx::query_as(stored_where!(
            "n.original_transaction_id > $1 AND n.original_transaction_id <= $2",
            "e.original_transaction_id > $1 AND e.original_transaction_id <= $2"
        ))
        .arg(after)
        .arg(through)
        .fetch_all(self.ex())
        .await?;
        Ok(stored_payloads(rows))
    }
}
