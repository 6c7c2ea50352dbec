//! The statements the fold needs ([`LedgerTx`]), written once for every
//! backend and made for each by `ledger_tx!(Connection, jsonb = "...")`:
//! `$N` placeholders in the order they first appear (SQLite numbers them so),
//! text read back with `CAST(... AS TEXT)`, and `jsonb` the cast a JSON
//! parameter needs (PostgreSQL's `::jsonb`, nothing on SQLite). The backend
//! module provides `lock_item`, which holds an item for the rest of the
//! transaction where several writers may fold it at once, and
//! `record_and_load` (a notification stored and its item loaded).

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

pub(in crate::store) use stored_where;

macro_rules! ledger_tx {
    ($conn:ty, jsonb = $jsonb:literal) => {
        use sqlx::QueryBuilder;

        use $crate::ledger::{ItemKey, State};
        use $crate::model::{Environment, Subtype};
        use $crate::store::fold::{
            ExpirationRow, LedgerTx, LoadedState, RefundRow, StoredPayload, Unfolded,
        };
        use $crate::store::{NewEvidence, NewNotification, QuarantineReason, Recorded};

        const INSERT_NOTIFICATION: &str = concat!("INSERT INTO notifications (notification_uuid, notification_type,
                subtype, signed_date, received_at, environment, bundle_id, app_apple_id,
                original_transaction_id, transaction_id, signed_payload, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12", $jsonb, ")
            ON CONFLICT (notification_uuid) DO NOTHING");

        const INSERT_QUARANTINED: &str = concat!("INSERT INTO quarantined_notifications (notification_uuid,
                notification_type, subtype, signed_date, received_at, environment, bundle_id, app_apple_id,
                original_transaction_id, transaction_id, signed_payload, payload, reason_code, reason)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12", $jsonb, ", $13, $14)
            ON CONFLICT (notification_uuid) DO NOTHING");

        /// Rows per multi-row INSERT: the widest (refunds, 19 columns) stays well
        /// under the bound parameters a statement may have (SQLite 32,766).
        const ROWS_PER_STATEMENT: usize = 500;

        type Db = <$conn as sqlx::Connection>::Database;

        /// A notification's twelve columns as parameters $1 to $12, in the
        /// order every statement that stores one names them.
        fn bind_notification<'q>(
            query: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>,
            n: &'q NewNotification,
        ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments> {
            query
                .bind(&n.notification_uuid)
                .bind(n.notification_type.as_str())
                .bind(n.subtype.as_ref().map(Subtype::as_str))
                .bind(n.signed_date)
                .bind(n.received_at)
                .bind(n.environment.as_ref().map(Environment::as_str))
                .bind(&n.bundle_id)
                .bind(n.app_apple_id)
                .bind(&n.original_transaction_id)
                .bind(&n.transaction_id)
                .bind(&n.signed_payload)
                .bind(&n.payload)
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

        impl LedgerTx for $conn {
            /// The backend's `record_and_load`.
            async fn record_and_load(
                &mut self,
                n: &NewNotification,
                item: Option<&ItemKey>,
            ) -> Result<(Recorded, Option<LoadedState>), sqlx::Error> {
                record_and_load(self, n, item).await
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
                    query = query.bind(&reason.code).bind(&reason.message);
                }
                let result = query.execute(&mut *self).await?;
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
                .bind(uuid)
                .fetch_optional(&mut *self)
                .await
            }

            async fn insert_conflict(&mut self, n: &NewNotification) -> Result<(), sqlx::Error> {
                sqlx::query(
                    concat!(
                        "INSERT INTO notification_conflicts (notification_uuid, received_at, signed_payload, payload)
                         VALUES ($1, $2, $3, $4", $jsonb, ") ON CONFLICT DO NOTHING"
                    ),
                )
                .bind(&n.notification_uuid)
                .bind(n.received_at)
                .bind(&n.signed_payload)
                .bind(&n.payload)
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn insert_evidence(&mut self, e: &NewEvidence) -> Result<bool, sqlx::Error> {
                let payload = serde_json::to_string(&e.event)
                    .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
                let result = sqlx::query(
                    concat!(
                        "INSERT INTO apple_evidence (evidence_id, source, original_transaction_id, transaction_id,
                             signed_date, fetched_at, bundle_id, environment, signed_data, payload)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9", $jsonb, ", $10", $jsonb, ")
                         ON CONFLICT (evidence_id) DO NOTHING"
                    ),
                )
                .bind(&e.evidence_id)
                .bind(e.source)
                .bind(&e.original_transaction_id)
                .bind(&e.transaction_id)
                .bind(e.signed_date)
                .bind(e.fetched_at)
                .bind(&e.bundle_id)
                .bind(&e.environment)
                .bind(&e.signed_data)
                .bind(payload)
                .execute(&mut *self)
                .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn delete_quarantined(&mut self, quarantine_id: i64) -> Result<(), sqlx::Error> {
                sqlx::query("DELETE FROM quarantined_notifications WHERE id = $1")
                    .bind(quarantine_id)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            /// Locks the item first (`lock_item`, the backend's): what this fold
            /// reads next includes every notification of the item committed before.
            async fn load_state(&mut self, item: &ItemKey) -> Result<LoadedState, sqlx::Error> {
                lock_item(self, item).await?;
                let row: Option<String> = sqlx::query_scalar(
                    "SELECT CAST(state AS TEXT) FROM ledger_items WHERE kind = $1 AND item_id = $2",
                )
                .bind(item.kind())
                .bind(item.id())
                .fetch_optional(&mut *self)
                .await?;
                Ok(LoadedState::from_json(row.as_deref()))
            }

            async fn item_notifications(
                &mut self,
                item: &ItemKey,
            ) -> Result<Vec<StoredPayload>, sqlx::Error> {
                let sql = match item {
                    ItemKey::Subscription(_) => $crate::store::sql::ledger_tx::stored_where!(
                        "n.original_transaction_id = $1",
                        "e.original_transaction_id = $1"
                    ),
                    ItemKey::Purchase(_) => $crate::store::sql::ledger_tx::stored_where!("n.transaction_id = $1", "e.transaction_id = $1"),
                };
                let rows = sqlx::query_as(sql)
                    .bind(item.id())
                    .fetch_all(&mut *self)
                    .await?;
                Ok(stored_payloads(rows))
            }

            async fn delete_item_records(&mut self, item: &ItemKey) -> Result<(), sqlx::Error> {
                for sql in [
                    "DELETE FROM refunds WHERE kind = $1 AND item_id = $2",
                    "DELETE FROM expirations WHERE kind = $1 AND item_id = $2",
                ] {
                    sqlx::query(sql)
                        .bind(item.kind())
                        .bind(item.id())
                        .execute(&mut *self)
                        .await?;
                }
                Ok(())
            }

            async fn save_states(&mut self, items: &[(&ItemKey, &State)]) -> Result<(), sqlx::Error> {
                for batch in items.chunks(ROWS_PER_STATEMENT) {
                    let mut json = Vec::with_capacity(batch.len());
                    for (_, state) in batch {
                        json.push(
                            serde_json::to_string(state).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
                        );
                    }
                    let mut query = QueryBuilder::new(
                        "INSERT INTO ledger_items (kind, item_id, original_transaction_id, bundle_id, environment,
                             product_id, app_account_token, status, expires_date, last_signed_date, app_transaction_id, state) ",
                    );
                    query.push_values(batch.iter().zip(json), |mut row, ((item, state), json)| {
                        row.push_bind(item.kind())
                            .push_bind(item.id())
                            .push_bind(
                                state
                                    .original_transaction_id
                                    .as_deref()
                                    .unwrap_or(item.id()),
                            )
                            .push_bind(state.bundle_id.as_deref())
                            .push_bind(state.environment.as_deref())
                            .push_bind(state.product_id.as_deref())
                            .push_bind(state.app_account_token.as_deref())
                            .push_bind(state.status.as_str())
                            .push_bind(state.expires_date())
                            .push_bind(state.last_signed_date)
                            .push_bind(state.app_transaction_id.as_deref())
                            .push_bind(json)
                            .push_unseparated($jsonb);
                    });
                    query.push(
                        " ON CONFLICT (kind, item_id) DO UPDATE SET
                             original_transaction_id = excluded.original_transaction_id, bundle_id = excluded.bundle_id,
                             environment = excluded.environment, product_id = excluded.product_id,
                             app_account_token = excluded.app_account_token, status = excluded.status,
                             expires_date = excluded.expires_date, last_signed_date = excluded.last_signed_date,
                             app_transaction_id = excluded.app_transaction_id, state = excluded.state",
                    );
                    query.build().execute(&mut *self).await?;
                }
                // Every token an item carried finds it (a state only gains
                // tokens, so rows are only added).
                let tokens: Vec<(&ItemKey, &State, &str)> = items
                    .iter()
                    .flat_map(|(item, state)| {
                        state
                            .app_account_tokens
                            .iter()
                            .map(move |token| (*item, *state, token.as_str()))
                    })
                    .collect();
                for batch in tokens.chunks(ROWS_PER_STATEMENT) {
                    let mut query = QueryBuilder::new(
                        "INSERT INTO item_tokens (app_account_token, kind, item_id, original_transaction_id) ",
                    );
                    query.push_values(batch, |mut row, (item, state, token)| {
                        row.push_bind(*token)
                            .push_bind(item.kind())
                            .push_bind(item.id())
                            .push_bind(
                                state
                                    .original_transaction_id
                                    .as_deref()
                                    .unwrap_or(item.id()),
                            );
                    });
                    query.push(" ON CONFLICT (app_account_token, kind, item_id) DO NOTHING");
                    query.build().execute(&mut *self).await?;
                }
                Ok(())
            }

            async fn insert_refunds(&mut self, refunds: &[RefundRow<'_>]) -> Result<(), sqlx::Error> {
                for batch in refunds.chunks(ROWS_PER_STATEMENT) {
                    let mut query = QueryBuilder::new(
                        "INSERT INTO refunds (notification_uuid, kind, item_id, notification_type, transaction_id,
                             original_transaction_id, product_id, bundle_id, environment, revocation_date,
                             revocation_reason, revocation_type, revocation_percentage, price, currency,
                             signed_date, refund_date, reversed_at, reversed_by, subtype, revoked_seat_quantity) ",
                    );
                    query.push_values(batch, |mut row, r| {
                        let refund = r.refund;
                        row.push_bind(refund.notification_uuid.as_str())
                            .push_bind(r.item.kind())
                            .push_bind(r.item.id())
                            .push_bind(refund.notification_type.as_str())
                            .push_bind(refund.transaction_id.as_deref())
                            .push_bind(
                                refund
                                    .original_transaction_id
                                    .as_deref()
                                    .unwrap_or(r.original_transaction_id),
                            )
                            .push_bind(refund.product_id.as_deref())
                            .push_bind(refund.bundle_id.as_deref())
                            .push_bind(refund.environment.as_deref())
                            .push_bind(refund.revocation_date)
                            .push_bind(refund.revocation_reason)
                            .push_bind(refund.revocation_type.as_deref())
                            .push_bind(refund.revocation_percentage)
                            .push_bind(refund.price)
                            .push_bind(refund.currency.as_deref())
                            .push_bind(refund.signed_date)
                            .push_bind(refund.revocation_date.unwrap_or(refund.signed_date))
                            .push_bind(r.reversed.map(|(at, _)| at))
                            .push_bind(r.reversed.map(|(_, by)| by))
                            .push_bind(refund.subtype.as_deref())
                            .push_bind(refund.revoked_seat_quantity);
                    });
                    query.push(" ON CONFLICT (notification_uuid) DO NOTHING");
                    query.build().execute(&mut *self).await?;
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
                .bind(reversed_at)
                .bind(reversed_by)
                .bind(item.kind())
                .bind(item.id())
                .bind(transaction_id)
                .execute(&mut *self)
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
                        row.push_bind(expiration.notification_uuid.as_str())
                            .push_bind(e.item.kind())
                            .push_bind(e.item.id())
                            .push_bind(expiration.subtype.as_deref())
                            .push_bind(expiration.transaction_id.as_deref())
                            .push_bind(
                                expiration
                                    .original_transaction_id
                                    .as_deref()
                                    .unwrap_or(e.original_transaction_id),
                            )
                            .push_bind(expiration.product_id.as_deref())
                            .push_bind(expiration.bundle_id.as_deref())
                            .push_bind(expiration.environment.as_deref())
                            .push_bind(expiration.expires_date)
                            .push_bind(expiration.signed_date);
                    });
                    query.push(" ON CONFLICT (notification_uuid) DO NOTHING");
                    query.build().execute(&mut *self).await?;
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
                .bind(app_transaction_id)
                .bind(rescinded_date)
                .bind(notification_uuid)
                .execute(&mut *self)
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
                .bind(&n.notification_uuid)
                .bind(what)
                .bind(n.original_transaction_id.as_deref())
                .bind(n.received_at)
                .execute(&mut *self)
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
                        .bind(uuid)
                        .execute(&mut *self)
                        .await?;
                }
                for u in unfolded {
                    sqlx::query(
                        "INSERT INTO unfolded_notifications (notification_uuid, original_transaction_id, reason)
                         VALUES ($1, $2, $3)
                         ON CONFLICT (notification_uuid) DO UPDATE SET reason = excluded.reason",
                    )
                    .bind(&u.notification_uuid)
                    .bind(&u.original_transaction_id)
                    .bind(&u.reason)
                    .execute(&mut *self)
                    .await?;
                }
                Ok(())
            }

            async fn chunk_end(&mut self, after: &str, size: i64) -> Result<Option<String>, sqlx::Error> {
                let end: Option<String> = sqlx::query_scalar(
                    "SELECT max(original_transaction_id) FROM (SELECT DISTINCT original_transaction_id FROM notifications
                     WHERE original_transaction_id > $1 ORDER BY original_transaction_id LIMIT $2) AS chunk",
                )
                .bind(after)
                .bind(size)
                .fetch_one(&mut *self)
                .await?;
                if end.is_some() {
                    return Ok(end);
                }
                // Past the notifications: items only Apple's answers speak of (few),
                // in one last chunk.
                sqlx::query_scalar(
                    "SELECT max(original_transaction_id) FROM apple_evidence WHERE original_transaction_id > $1",
                )
                .bind(after)
                .fetch_one(&mut *self)
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
                    let query = sqlx::query(sql).bind(after);
                    match through {
                        Some(through) => query.bind(through),
                        None => query,
                    }
                    .execute(&mut *self)
                    .await?;
                }
                Ok(())
            }

            async fn range_notifications(
                &mut self,
                after: &str,
                through: &str,
            ) -> Result<Vec<StoredPayload>, sqlx::Error> {
                let rows = sqlx::query_as($crate::store::sql::ledger_tx::stored_where!(
                    "n.original_transaction_id > $1 AND n.original_transaction_id <= $2",
                    "e.original_transaction_id > $1 AND e.original_transaction_id <= $2"
                ))
                .bind(after)
                .bind(through)
                .fetch_all(&mut *self)
                .await?;
                Ok(stored_payloads(rows))
            }
        }
    };
}
pub(in crate::store) use ledger_tx;
