//! The store on PostgreSQL. Unlike SQLite there is no single writer: every
//! instance writes notifications in batches on a few connections
//! (writer.rs), items are locked for their read-modify-write (see
//! ledger_tx.rs), and a serialization failure or a deadlock is retried
//! before the request is answered 503.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Connection;

use super::retry::{in_transaction, unavailable};
use super::writer::{WriteOp, Writers};
use super::{connect_options, findings, leases, read};
use crate::finding::Finding;
use crate::store::fold::{self, LedgerTx};
use crate::store::{
    Conflict, Counts, FindingEntry, FindingFilter, ItemQuery, LedgerItem, NewNotification,
    QuarantineReason, QuarantinedNotification, Rebuilt, Recorded, RefundEntry, RefundFilter,
    RescindedConsent, StoreError, SubscriptionHistory, Totals, UnfoldedNotification, UnknownShape,
};

/// More than a notification writes (see the SQLite probe).
const PROBE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub(in crate::store) struct PgStore {
    pool: PgPool,
    writers: Writers,
}

impl PgStore {
    /// `busy_timeout`: how long a notification's write waits for a lock
    /// held elsewhere before it is refused (503, and Apple retries).
    pub(in crate::store) async fn connect(
        url: &str,
        max_connections: u32,
        busy_timeout: Duration,
        batch_sizes: crate::store::WriteBatchSizes,
    ) -> Result<PgStore, StoreError> {
        let timeout = busy_timeout.max(Duration::from_secs(5));
        super::migrate(url, timeout).await?;
        let open = |e| StoreError::Open(std::sync::Arc::new(e));
        // Half the connections write notifications, the rest answer queries
        // and run jobs (whose locks may be waited for as long as they take).
        let writers = (max_connections / 2).max(1);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.saturating_sub(writers).max(1))
            .acquire_timeout(timeout)
            .connect_with(connect_options(url)?)
            .await
            .map_err(open)?;
        let lock_timeout = format!("{}ms", busy_timeout.as_millis().max(1));
        let writer_pool = PgPoolOptions::new()
            .max_connections(writers)
            .acquire_timeout(timeout)
            .connect_with(connect_options(url)?.options([("lock_timeout", lock_timeout)]))
            .await
            .map_err(open)?;
        let writers = Writers::start(writer_pool, writers as usize, batch_sizes);
        Ok(PgStore { pool, writers })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn read(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.pool.acquire().await.map_err(unavailable)
    }

    pub(in crate::store) async fn record_notification(
        &self,
        n: NewNotification,
    ) -> Result<Recorded, StoreError> {
        self.writers.write(WriteOp::Record(n)).await
    }

    pub(in crate::store) async fn quarantine(
        &self,
        n: NewNotification,
        reason: QuarantineReason,
    ) -> Result<Recorded, StoreError> {
        self.writers.write(WriteOp::Quarantine(n, reason)).await
    }

    pub(in crate::store) async fn release(
        &self,
        quarantine_id: i64,
        n: NewNotification,
    ) -> Result<Recorded, StoreError> {
        self.writers.write(WriteOp::Release(quarantine_id, n)).await
    }

    pub(in crate::store) async fn quarantined(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<QuarantinedNotification>, StoreError> {
        read::quarantined(&mut *self.read().await?, after_id, limit)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn rescinded_consents(
        &self,
        app_transaction_ids: &[String],
    ) -> Result<Vec<RescindedConsent>, StoreError> {
        read::rescinded_consents(&mut *self.read().await?, app_transaction_ids)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn ledger_items(
        &self,
        query: &ItemQuery,
    ) -> Result<Vec<LedgerItem>, StoreError> {
        read::items_where(&mut *self.read().await?, query)
            .await
            .map_err(unavailable)
    }

    /// In one snapshot (REPEATABLE READ; see read::subscription_history).
    pub(in crate::store) async fn history(
        &self,
        original_transaction_id: &str,
    ) -> Result<SubscriptionHistory, StoreError> {
        let mut connection = self.read().await?;
        let mut tx = connection
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(unavailable)?;
        let history = read::subscription_history(&mut tx, original_transaction_id)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(history)
    }

    pub(in crate::store) async fn scan_ledger(
        &self,
        after: Option<&(String, String)>,
        limit: i64,
    ) -> Result<Vec<LedgerItem>, StoreError> {
        findings::scan(&mut *self.read().await?, after, limit)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn unknown_shapes(&self) -> Result<Vec<UnknownShape>, StoreError> {
        findings::unknown_shapes(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn unfolded(&self) -> Result<Vec<UnfoldedNotification>, StoreError> {
        findings::unfolded(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn conflicts(&self) -> Result<Vec<Conflict>, StoreError> {
        findings::conflicts(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn open_finding_keys(
        &self,
        subject: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        findings::open_finding_keys(&mut *self.read().await?, subject)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn resolve_findings(
        &self,
        keys: &[(String, String)],
        now: i64,
        resolution: Option<&str>,
    ) -> Result<u64, StoreError> {
        in_transaction!(self, tx, {
            findings::resolve_findings(tx, keys, now, resolution).await
        })
    }

    pub(in crate::store) async fn attribute_resolution(
        &self,
        subject: &str,
        since: i64,
        resolution: &str,
    ) -> Result<u64, StoreError> {
        in_transaction!(self, tx, {
            findings::attribute_resolution(tx, subject, since, resolution).await
        })
    }

    pub(in crate::store) async fn upsert_findings(
        &self,
        records: &[Finding],
        now: i64,
    ) -> Result<u64, StoreError> {
        in_transaction!(self, tx, {
            findings::upsert_findings(tx, records, now).await
        })
    }

    pub(in crate::store) async fn findings(
        &self,
        filter: &FindingFilter,
    ) -> Result<Vec<FindingEntry>, StoreError> {
        findings::findings(&mut *self.read().await?, filter)
            .await
            .map_err(unavailable)
    }

    /// The shards summed, in one snapshot.
    pub(in crate::store) async fn totals(&self) -> Result<Totals, StoreError> {
        let mut connection = self.read().await?;
        let mut tx = connection
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(unavailable)?;
        let named: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, sum(value)::bigint FROM totals GROUP BY name")
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?;
        let open_findings = sqlx::query_as(
            "SELECT kind, sum(open)::bigint FROM open_findings GROUP BY kind
             HAVING sum(open) > 0 ORDER BY kind",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        let total = |name: &str| {
            named
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, value)| *value)
        };
        Ok(Totals {
            notifications: total("notifications"),
            quarantined: total("quarantined_notifications"),
            open_findings,
        })
    }

    pub(in crate::store) async fn refunds(
        &self,
        filter: &RefundFilter,
    ) -> Result<Vec<RefundEntry>, StoreError> {
        read::refunds(&mut *self.read().await?, filter)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn snapshot(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        read::snapshot(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    /// By chunks of original transaction ids, each in one transaction that
    /// holds new notifications back (SHARE lock) while it reads and writes,
    /// so that no instance folds into an item the chunk is rewriting.
    pub(in crate::store) async fn rebuild(
        &self,
        mut progress: impl FnMut(u64, u64),
        stop: &crate::stop::Stop,
    ) -> Result<Rebuilt, StoreError> {
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications WHERE original_transaction_id IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        let total = u64::try_from(total).unwrap_or(0);
        let mut after = String::new();
        let mut done = 0u64;
        let complete = loop {
            if stop.is_cancelled() {
                break false;
            }
            let (last, folded) = in_transaction!(self, tx, {
                sqlx::query("LOCK TABLE notifications, apple_evidence IN SHARE MODE")
                    .execute(&mut *tx)
                    .await?;
                fold::rebuild_chunk(tx, &after, 2_000).await
            })?;
            done += folded;
            progress(done, total);
            match last {
                Some(last) => after = last,
                None => break true,
            }
        };
        Ok(Rebuilt {
            notifications: done,
            complete,
        })
    }

    pub(in crate::store) async fn import(
        &self,
        notifications: &[NewNotification],
    ) -> Result<u64, StoreError> {
        in_transaction!(self, tx, {
            let mut stored = 0;
            for n in notifications {
                if tx.insert_notification(n, None).await? == Recorded::Stored {
                    stored += 1;
                }
            }
            Ok(stored)
        })
    }

    pub(in crate::store) async fn counts(&self) -> Result<Counts, StoreError> {
        read::counts(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    /// Healthy means a notification could be stored now: a row larger than
    /// one is written and committed.
    pub(in crate::store) async fn health(&self, now: i64) -> Result<(), StoreError> {
        let filler = vec![0u8; PROBE_BYTES];
        in_transaction!(self, tx, {
            sqlx::query(
                "INSERT INTO write_probe (id, probed_at, filler) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at, filler = excluded.filler",
            )
            .bind(now)
            .bind(&filler)
            .execute(&mut *tx)
            .await
            .map(drop)
        })
    }

    pub(in crate::store) async fn hold_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        in_transaction!(self, tx, {
            leases::hold_lease(tx, job, holder, now, expires_at).await
        })
    }

    pub(in crate::store) async fn release_lease(
        &self,
        job: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        in_transaction!(self, tx, { leases::release_lease(tx, job, holder).await })
    }

    pub(in crate::store) async fn close(&self) {
        self.writers.close().await;
        self.pool.close().await;
    }
}
