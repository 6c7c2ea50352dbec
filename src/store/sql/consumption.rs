//! The refund desk's statements, written once for every backend
//! (conventions in sql/mod.rs): consumption requests, the customers'
//! consents and the facts the backend sent. A request is opened by the
//! fold's transaction (ledger_tx.rs); the job moves it only while it holds
//! the request's claim, so two instances never answer one request.

use sqlx::{ColumnIndex, Database, Decode, Type};

use crate::store::{
    ConsumptionFilter, ConsumptionProgress, ConsumptionRequestEntry, NewConsumptionFacts,
};

use super::{ArgExt as _, Conn, RowsAffected as _, Sql};

/// A request with its outcome, consent and facts; `r` is the request.
const ENTRY: &str = "SELECT r.notification_uuid, r.transaction_id, r.original_transaction_id, r.bundle_id,
        r.environment, r.product_id, r.product_type, r.in_app_ownership_type, r.app_account_token,
        r.purchase_date, r.expires_date, r.reason, r.requested_at, r.received_at, r.deadline, r.state,
        r.why, r.attempts, r.next_attempt_at, r.last_error, r.send_now_by, r.sent_body, r.sent_at,
        r.apple_status, r.closed_at,
        o.notification_type AS outcome, o.at AS outcome_date,
        c.consumption_data AS consent, c.recorded_at AS consent_recorded_at,
        f.delivery_status AS facts_delivery_status,
        f.consumption_percentage AS facts_consumption_percentage,
        f.sample_content_provided AS facts_sample_content_provided,
        f.refund_preference AS facts_refund_preference,
        f.recorded_at AS facts_recorded_at, f.recorded_by AS facts_recorded_by
    FROM consumption_requests r
    LEFT JOIN consumption_consents c ON c.app_account_token = r.app_account_token
    LEFT JOIN consumption_facts f ON f.transaction_id = r.transaction_id
    LEFT JOIN (
        SELECT n.notification_type, coalesce(n.signed_date, n.received_at) AS at, q.notification_uuid AS request
        FROM consumption_requests q
        JOIN notifications n ON n.transaction_id = q.transaction_id
            AND n.notification_type IN ('REFUND', 'REFUND_DECLINED')
            AND coalesce(n.signed_date, n.received_at) >= q.requested_at
            AND NOT EXISTS (
                SELECT 1 FROM notifications e WHERE e.transaction_id = q.transaction_id
                    AND e.notification_type IN ('REFUND', 'REFUND_DECLINED')
                    AND coalesce(e.signed_date, e.received_at) >= q.requested_at
                    AND (coalesce(e.signed_date, e.received_at), e.notification_uuid)
                        < (coalesce(n.signed_date, n.received_at), n.notification_uuid))
    ) o ON o.request = r.notification_uuid";

impl<C> Sql<C>
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> bool: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    /// Requests to list, soonest deadline first among the open, newest
    /// first among the rest.
    pub(in crate::store) async fn consumption_requests(
        conn: &mut C,
        filter: &ConsumptionFilter,
    ) -> Result<Vec<ConsumptionRequestEntry>, sqlx::Error> {
        let sql = format!(
            "{ENTRY}
             WHERE (CAST($1 AS INTEGER) IS NULL OR (r.state = 'OPEN') = ($1 = 1))
               AND (CAST($2 AS TEXT) IS NULL OR r.original_transaction_id = $2)
               AND (CAST($3 AS TEXT) IS NULL OR r.transaction_id = $3)
             ORDER BY CASE WHEN r.state = 'OPEN' THEN r.deadline ELSE -r.requested_at END, r.notification_uuid
             LIMIT $4"
        );
        sqlx::query_as::<_, ConsumptionRequestEntry>(sqlx::AssertSqlSafe(sql))
            .arg(filter.open.map(i64::from))
            .arg(filter.original_transaction_id.as_deref())
            .arg(filter.transaction_id.as_deref())
            .arg(filter.limit)
            .fetch_all(conn.ex())
            .await
    }

    /// Open requests the job may act on at `now`: not claimed by another
    /// instance, not waiting for a later attempt (unless Apple has decided
    /// meanwhile: then the job closes them).
    pub(in crate::store) async fn consumption_due(
        conn: &mut C,
        now: i64,
        limit: i64,
    ) -> Result<Vec<ConsumptionRequestEntry>, sqlx::Error> {
        let sql = format!(
            "{ENTRY}
             WHERE r.state = 'OPEN'
               AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= $1 OR o.notification_type IS NOT NULL)
               AND (r.claimed_until IS NULL OR r.claimed_until <= $1)
             ORDER BY r.deadline, r.notification_uuid
             LIMIT $2"
        );
        sqlx::query_as::<_, ConsumptionRequestEntry>(sqlx::AssertSqlSafe(sql))
            .arg(now)
            .arg(limit)
            .fetch_all(conn.ex())
            .await
    }

    /// Requests whose deadline passed at `at` without an answer, and that
    /// Apple has not settled since (no REFUND or REFUND_DECLINED): those
    /// the job found missed, and those still open an hour past their
    /// deadline (no instance ran the job).
    pub(in crate::store) async fn consumption_missed(
        conn: &mut C,
        at: i64,
    ) -> Result<Vec<ConsumptionRequestEntry>, sqlx::Error> {
        let sql = format!(
            "{ENTRY}
             WHERE (r.state = 'MISSED' OR (r.state = 'OPEN' AND r.deadline <= $1 - 3600000))
               AND o.notification_type IS NULL
             ORDER BY r.deadline, r.notification_uuid"
        );
        sqlx::query_as::<_, ConsumptionRequestEntry>(sqlx::AssertSqlSafe(sql))
            .arg(at)
            .fetch_all(conn.ex())
            .await
    }

    /// The auto-renewable subscriptions with a consumption request made
    /// since `since` that no REFUND or REFUND_DECLINED has answered.
    pub(in crate::store) async fn undecided_refund_requests(
        conn: &mut C,
        since: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        let sql = format!(
            "SELECT DISTINCT q.original_transaction_id FROM ({ENTRY}
                 WHERE r.requested_at >= $1 AND o.notification_type IS NULL
                   AND r.product_type = 'Auto-Renewable Subscription'
                   AND r.original_transaction_id IS NOT NULL) q
             ORDER BY q.original_transaction_id"
        );
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .arg(since)
            .fetch_all(conn.ex())
            .await
    }

    /// Takes the request for `holder` until `until`, if it is open and
    /// nobody else holds it; true when `holder` has it.
    pub(in crate::store) async fn claim_consumption_request(
        tx: &mut C,
        notification_uuid: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, sqlx::Error> {
        let claimed = sqlx::query(
            "UPDATE consumption_requests SET claimed_by = $1, claimed_until = $2
             WHERE notification_uuid = $3 AND state = 'OPEN'
               AND (claimed_until IS NULL OR claimed_until <= $4 OR claimed_by = $1)",
        )
        .arg(holder)
        .arg(until)
        .arg(notification_uuid)
        .arg(now)
        .execute(tx.ex())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Keeps what the job did, and gives the claim back; false when
    /// `holder` no longer held it (nothing is written then).
    pub(in crate::store) async fn record_consumption_progress(
        tx: &mut C,
        notification_uuid: &str,
        holder: &str,
        p: &ConsumptionProgress,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE consumption_requests SET state = $1, why = $2, attempts = attempts + $3,
                 next_attempt_at = $4, last_error = coalesce($5, last_error), sent_body = $6,
                 sent_at = $7, apple_status = $8, closed_at = $9, claimed_by = NULL, claimed_until = NULL
             WHERE notification_uuid = $10 AND claimed_by = $11 AND state = 'OPEN'",
        )
        .arg(p.state)
        .arg(p.why)
        .arg(i64::from(p.attempted))
        .arg(p.next_attempt_at)
        .arg(p.last_error.as_deref())
        .arg(p.sent_body.as_deref())
        .arg(p.sent_at)
        .arg(p.apple_status)
        .arg(p.closed_at)
        .arg(notification_uuid)
        .arg(holder)
        .execute(tx.ex())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A support agent asks for the answer to go at the job's next run.
    pub(in crate::store) async fn send_consumption_now(
        tx: &mut C,
        notification_uuid: &str,
        by: &str,
    ) -> Result<bool, sqlx::Error> {
        let asked = sqlx::query(
            "UPDATE consumption_requests SET send_now_by = $1, next_attempt_at = NULL
             WHERE notification_uuid = $2 AND state = 'OPEN'",
        )
        .arg(by)
        .arg(notification_uuid)
        .execute(tx.ex())
        .await?;
        Ok(asked.rows_affected() == 1)
    }

    /// Keeps the customer's consent, unless a later one is kept already.
    pub(in crate::store) async fn set_consumption_consent(
        tx: &mut C,
        app_account_token: &str,
        consumption_data: bool,
        recorded_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO consumption_consents (app_account_token, consumption_data, recorded_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (app_account_token) DO UPDATE SET
                 consumption_data = excluded.consumption_data, recorded_at = excluded.recorded_at
             WHERE excluded.recorded_at >= consumption_consents.recorded_at",
        )
        .arg(app_account_token)
        .arg(consumption_data)
        .arg(recorded_at)
        .execute(tx.ex())
        .await
        .map(drop)
    }

    /// Keeps the facts for a transaction, replacing what was said before.
    pub(in crate::store) async fn set_consumption_facts(
        tx: &mut C,
        f: &NewConsumptionFacts,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO consumption_facts (transaction_id, delivery_status, consumption_percentage,
                 sample_content_provided, refund_preference, recorded_at, recorded_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (transaction_id) DO UPDATE SET
                 delivery_status = excluded.delivery_status,
                 consumption_percentage = excluded.consumption_percentage,
                 sample_content_provided = excluded.sample_content_provided,
                 refund_preference = excluded.refund_preference,
                 recorded_at = excluded.recorded_at, recorded_by = excluded.recorded_by",
        )
        .arg(f.transaction_id.as_str())
        .arg(f.delivery_status.as_deref())
        .arg(f.consumption_percentage)
        .arg(f.sample_content_provided)
        .arg(f.refund_preference.as_deref())
        .arg(f.recorded_at)
        .arg(f.recorded_by.as_str())
        .execute(tx.ex())
        .await
        .map(drop)
    }
}
