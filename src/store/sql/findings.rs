//! The inconsistency checker's reads and writes, written once for every
//! backend (conventions in sql/mod.rs): the ledger scan, conflicting
//! duplicates, unfolded notifications and the kept findings.

use crate::finding::Finding;
use crate::store::{
    Conflict, FindingEntry, FindingFilter, LedgerItem, UnfoldedNotification, UnknownShape,
};
use sqlx::{ColumnIndex, Database, Decode, Type};

use super::{ArgExt as _, Conn, RowsAffected as _, Sql};

impl<C> Sql<C>
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    pub(in crate::store) async fn scan(
        conn: &mut C,
        after: Option<&(String, String)>,
        limit: i64,
    ) -> Result<Vec<LedgerItem>, sqlx::Error> {
        let (kind, id) = after.cloned().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT kind, item_id, CAST(state AS TEXT) AS state FROM ledger_items WHERE (kind, item_id) > ($1, $2)
             ORDER BY kind, item_id LIMIT $3",
        )
        .arg(kind)
        .arg(id)
        .arg(limit)
        .fetch_all(conn.ex())
        .await?;
        rows.iter().map(Self::ledger_item).collect()
    }

    pub(in crate::store) async fn conflicts(conn: &mut C) -> Result<Vec<Conflict>, sqlx::Error> {
        let rows = sqlx::query_as::<_, Conflict>(
            "SELECT c.notification_uuid, n.original_transaction_id, n.bundle_id, n.environment, count(*) AS versions
             FROM notification_conflicts c JOIN notifications n ON n.notification_uuid = c.notification_uuid
             GROUP BY c.notification_uuid, n.original_transaction_id, n.bundle_id, n.environment
             ORDER BY c.notification_uuid",
        )
        .fetch_all(conn.ex())
        .await?;
        Ok(rows)
    }

    pub(in crate::store) async fn unfolded(
        conn: &mut C,
    ) -> Result<Vec<UnfoldedNotification>, sqlx::Error> {
        let rows = sqlx::query_as::<_, UnfoldedNotification>(
            "SELECT u.notification_uuid, u.original_transaction_id, u.reason, n.bundle_id, n.environment
             FROM unfolded_notifications u LEFT JOIN notifications n ON n.notification_uuid = u.notification_uuid
             ORDER BY u.notification_uuid",
        )
        .fetch_all(conn.ex())
        .await?;
        Ok(rows)
    }

    pub(in crate::store) async fn unknown_shapes(
        conn: &mut C,
    ) -> Result<Vec<UnknownShape>, sqlx::Error> {
        sqlx::query_as::<_, UnknownShape>(
            "SELECT u.notification_uuid, n.original_transaction_id, n.bundle_id, n.environment,
                    CAST(n.payload AS TEXT) AS payload
             FROM unknown_shapes u JOIN notifications n ON n.notification_uuid = u.notification_uuid
             ORDER BY u.notification_uuid",
        )
        .fetch_all(conn.ex())
        .await
    }

    pub(in crate::store) async fn open_finding_keys(
        conn: &mut C,
        subject: Option<&str>,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT kind, subject FROM findings
             WHERE resolved_at IS NULL AND (CAST($1 AS TEXT) IS NULL OR subject = $1)",
        )
        .arg(subject)
        .fetch_all(conn.ex())
        .await
    }

    pub(in crate::store) async fn resolve_findings(
        tx: &mut C,
        keys: &[(String, String)],
        now: i64,
        resolution: Option<&str>,
    ) -> Result<u64, sqlx::Error> {
        let mut resolved = 0;
        for (kind, subject) in keys {
            resolved += sqlx::query(
                "UPDATE findings SET resolved_at = $1, resolution = $2
                 WHERE kind = $3 AND subject = $4 AND resolved_at IS NULL",
            )
            .arg(now)
            .arg(resolution)
            .arg(kind)
            .arg(subject)
            .execute(tx.ex())
            .await?
            .rows_affected();
        }
        Ok(resolved)
    }

    pub(in crate::store) async fn attribute_resolution(
        tx: &mut C,
        subject: &str,
        since: i64,
        resolution: &str,
    ) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(
            "UPDATE findings SET resolution = $1
             WHERE subject = $2 AND resolved_at >= $3 AND resolution IS NULL",
        )
        .arg(resolution)
        .arg(subject)
        .arg(since)
        .execute(tx.ex())
        .await?
        .rows_affected())
    }

    /// Sees each finding again, opening those not open yet; returns how many
    /// were opened.
    pub(in crate::store) async fn upsert_findings(
        tx: &mut C,
        findings: &[Finding],
        now: i64,
    ) -> Result<u64, sqlx::Error> {
        let mut opened = 0;
        for f in findings {
            let updated = sqlx::query(
                "UPDATE findings SET last_seen = $1, detail = $2, bundle_id = $3, environment = $4,
                     original_transaction_id = $5
                 WHERE kind = $6 AND subject = $7 AND resolved_at IS NULL",
            )
            .arg(now)
            .arg(crate::finding::clip(
                &f.detail,
                crate::finding::MAX_DETAIL_CHARS,
            ))
            .arg(&f.bundle_id)
            .arg(&f.environment)
            .arg(&f.original_transaction_id)
            .arg(f.kind.code())
            .arg(&f.subject)
            .execute(tx.ex())
            .await?;
            if updated.rows_affected() == 0 {
                sqlx::query(
                    "INSERT INTO findings (kind, subject, original_transaction_id, bundle_id, environment, detail,
                         first_seen, last_seen)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .arg(f.kind.code())
                .arg(&f.subject)
                .arg(&f.original_transaction_id)
                .arg(&f.bundle_id)
                .arg(&f.environment)
                .arg(crate::finding::clip(&f.detail, crate::finding::MAX_DETAIL_CHARS))
                .arg(now)
                .execute(tx.ex())
                .await?;
                opened += 1;
            }
        }
        Ok(opened)
    }

    pub(in crate::store) async fn findings(
        conn: &mut C,
        filter: &FindingFilter,
    ) -> Result<Vec<FindingEntry>, sqlx::Error> {
        let rows = sqlx::query_as::<_, FindingEntry>(
            "SELECT * FROM findings
             WHERE (CAST($1 AS TEXT) IS NULL OR kind = $1) AND (CAST($2 AS TEXT) IS NULL OR bundle_id = $2)
               AND (CAST($3 AS BOOLEAN) IS NULL OR $3 = (resolved_at IS NULL))
               AND (CAST($5 AS TEXT) IS NULL OR original_transaction_id = $5)
             ORDER BY first_seen DESC, id DESC LIMIT $4",
        )
        .arg(&filter.kind)
        .arg(&filter.bundle_id)
        .arg(filter.open)
        .arg(filter.limit)
        .arg(&filter.original_transaction_id)
        .fetch_all(conn.ex())
        .await?;
        Ok(rows)
    }
}
