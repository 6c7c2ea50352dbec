//! The inconsistency checker's tables on SQLite: conflicting duplicates kept
//! as evidence, the ledger scan, and the kept findings.

use sqlx::{Row, SqliteConnection};

use super::sqlite_ledger::ledger_item;
use super::{
    Conflict, FindingEntry, FindingFilter, FindingRecord, LedgerItem, NewNotification, SyncSummary,
};

/// A repeat of a stored notificationUUID whose content differs (ignoring the
/// signing dates, which a re-signed retry may change) is kept as evidence.
pub(super) async fn keep_if_conflicting(
    tx: &mut SqliteConnection,
    n: &NewNotification,
) -> Result<(), sqlx::Error> {
    let stored: Option<(String, String)> = sqlx::query_as(
        "SELECT signed_payload, payload FROM notifications WHERE notification_uuid = ?1",
    )
    .bind(&n.notification_uuid)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((signed_payload, payload)) = stored else {
        return Ok(());
    };
    if signed_payload == n.signed_payload || same_content(&payload, &n.payload) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO notification_conflicts (notification_uuid, received_at, signed_payload, payload)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (notification_uuid, signed_payload) DO NOTHING",
    )
    .bind(&n.notification_uuid)
    .bind(n.received_at)
    .bind(&n.signed_payload)
    .bind(&n.payload)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn same_content(a: &str, b: &str) -> bool {
    fn without_signed_dates(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("signedDate");
                map.values_mut().for_each(without_signed_dates);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(without_signed_dates),
            _ => {}
        }
    }
    match (serde_json::from_str(a), serde_json::from_str(b)) {
        (Ok(mut a), Ok(mut b)) => {
            without_signed_dates(&mut a);
            without_signed_dates(&mut b);
            a == b
        }
        _ => a == b,
    }
}

pub(super) async fn scan(
    conn: &mut SqliteConnection,
    after: Option<&(String, String)>,
    limit: i64,
) -> Result<Vec<LedgerItem>, sqlx::Error> {
    let (kind, id) = after.cloned().unwrap_or_default();
    let rows = sqlx::query(
        "SELECT kind, item_id, state FROM ledger_items WHERE (kind, item_id) > (?1, ?2)
         ORDER BY kind, item_id LIMIT ?3",
    )
    .bind(kind)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(ledger_item).collect()
}

pub(super) async fn conflicts(conn: &mut SqliteConnection) -> Result<Vec<Conflict>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.notification_uuid, n.original_transaction_id, n.bundle_id, n.environment, count(*) AS versions
         FROM notification_conflicts c JOIN notifications n ON n.notification_uuid = c.notification_uuid
         GROUP BY c.notification_uuid ORDER BY c.notification_uuid",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Conflict {
                notification_uuid: row.try_get("notification_uuid")?,
                original_transaction_id: row.try_get("original_transaction_id")?,
                bundle_id: row.try_get("bundle_id")?,
                environment: row.try_get("environment")?,
                versions: row.try_get("versions")?,
            })
        })
        .collect()
}

pub(super) async fn sync_findings(
    tx: &mut SqliteConnection,
    findings: &[FindingRecord],
    now: i64,
) -> Result<SyncSummary, sqlx::Error> {
    let open: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, subject FROM findings WHERE resolved_at IS NULL")
            .fetch_all(&mut *tx)
            .await?;
    let current: std::collections::HashSet<(&str, &str)> = findings
        .iter()
        .map(|f| (f.kind.as_str(), f.subject.as_str()))
        .collect();
    let mut summary = SyncSummary::default();
    for (kind, subject) in &open {
        if !current.contains(&(kind.as_str(), subject.as_str())) {
            sqlx::query("UPDATE findings SET resolved_at = ?1 WHERE kind = ?2 AND subject = ?3 AND resolved_at IS NULL")
                .bind(now)
                .bind(kind)
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            summary.resolved += 1;
        }
    }
    for f in findings {
        let updated = sqlx::query(
            "UPDATE findings SET last_seen = ?1, detail = ?2, bundle_id = ?3, environment = ?4,
                 original_transaction_id = ?5
             WHERE kind = ?6 AND subject = ?7 AND resolved_at IS NULL",
        )
        .bind(now)
        .bind(&f.detail)
        .bind(&f.bundle_id)
        .bind(&f.environment)
        .bind(&f.original_transaction_id)
        .bind(&f.kind)
        .bind(&f.subject)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO findings (kind, subject, original_transaction_id, bundle_id, environment, detail,
                     first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            )
            .bind(&f.kind)
            .bind(&f.subject)
            .bind(&f.original_transaction_id)
            .bind(&f.bundle_id)
            .bind(&f.environment)
            .bind(&f.detail)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            summary.opened += 1;
        }
    }
    Ok(summary)
}

pub(super) async fn findings(
    conn: &mut SqliteConnection,
    filter: &FindingFilter,
) -> Result<Vec<FindingEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM findings
         WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR bundle_id = ?2)
           AND (?3 IS NULL OR (?3 = 1 AND resolved_at IS NULL) OR (?3 = 0 AND resolved_at IS NOT NULL))
         ORDER BY first_seen DESC, id DESC LIMIT ?4",
    )
    .bind(&filter.kind)
    .bind(&filter.bundle_id)
    .bind(filter.open)
    .bind(filter.limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(FindingEntry {
                kind: row.try_get("kind")?,
                subject: row.try_get("subject")?,
                original_transaction_id: row.try_get("original_transaction_id")?,
                bundle_id: row.try_get("bundle_id")?,
                environment: row.try_get("environment")?,
                detail: row.try_get("detail")?,
                first_seen: row.try_get("first_seen")?,
                last_seen: row.try_get("last_seen")?,
                resolved_at: row.try_get("resolved_at")?,
            })
        })
        .collect()
}
