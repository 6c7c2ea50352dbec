//! SQLite: WAL, fully synchronous commits, and one writer that commits
//! concurrent notifications together.
//!
//! SQLite allows one writer at a time and every durable commit costs an fsync.
//! Rather than let request tasks queue on the write lock, a single task owns
//! the write connection, takes every notification waiting at that moment and
//! writes them in one transaction: one fsync acknowledges them all. Each
//! notification is still written whole or not at all, and no answer is sent
//! before its commit.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

mod appstore;
mod console;
mod copy;
mod findings;
mod leases;
mod ledger_tx;
mod read;
mod readers;
mod schema;
mod users;

pub(super) use schema::{backup, migrate};
use schema::{connect_options, MIGRATOR};

use super::fold::{self, LedgerTx};
use super::{
    Conflict, Counts, FindingEntry, FindingFilter, ItemQuery, LedgerItem, NewNotification,
    QuarantineReason, QuarantinedNotification, Rebuilt, Recorded, RefundEntry, RefundFilter,
    RescindedConsent, StoreError, SubscriptionHistory, Totals, UnfoldedNotification, UnknownShape,
};
use crate::finding::Finding;

/// The most notifications committed together.
const MAX_BATCH: usize = 256;
/// Requests waiting for the writer; beyond this, senders wait (back-pressure).
const QUEUE: usize = 4096;

enum WriteOp {
    /// Writes a row the size of a notification and commits it: proves the
    /// database can accept a notification right now (the write lock, the
    /// files, the disk).
    /// The health probe's write, at the store clock's moment.
    Probe(i64),
    Record(NewNotification),
    Quarantine(NewNotification, QuarantineReason),
    Release(i64, NewNotification),
}

// Jobs are moved once, into the channel; boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
enum Job {
    Write(WriteOp, oneshot::Sender<Result<Recorded, StoreError>>),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub(super) struct SqliteStore {
    readers: readers::Readers,
    options: SqliteConnectOptions,
    writer: mpsc::Sender<Job>,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::unavailable(e)
}

impl SqliteStore {
    /// Opens the database at `url`; creates its file only when `create`.
    pub(super) async fn connect(
        url: &str,
        max_connections: u32,
        busy_timeout: Duration,
        create: bool,
        batch_sizes: crate::store::WriteBatchSizes,
    ) -> Result<SqliteStore, StoreError> {
        let options = connect_options(url, busy_timeout)?.create_if_missing(create);
        let readers = readers::Readers::connect(
            options.clone(),
            max_connections,
            busy_timeout.max(Duration::from_secs(1)),
        )
        .await
        .map_err(|e| StoreError::Open(std::sync::Arc::new(e)))?;
        MIGRATOR
            .run(&readers.pool())
            .await
            .map_err(|e| StoreError::Migration(std::sync::Arc::new(e)))?;
        let (writer, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run_writer(
            options.clone(),
            readers.clone(),
            jobs,
            batch_sizes,
        ));
        Ok(SqliteStore {
            readers,
            options,
            writer,
        })
    }

    pub(super) async fn record_notification(
        &self,
        n: NewNotification,
    ) -> Result<Recorded, StoreError> {
        self.write(WriteOp::Record(n)).await
    }

    pub(super) async fn quarantine(
        &self,
        n: NewNotification,
        reason: QuarantineReason,
    ) -> Result<Recorded, StoreError> {
        self.write(WriteOp::Quarantine(n, reason)).await
    }

    pub(super) async fn release(
        &self,
        quarantine_id: i64,
        n: NewNotification,
    ) -> Result<Recorded, StoreError> {
        self.write(WriteOp::Release(quarantine_id, n)).await
    }

    /// Hands a write to the single writer task and waits for its commit.
    async fn write(&self, op: WriteOp) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job::Write(op, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) async fn quarantined(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<QuarantinedNotification>, StoreError> {
        read::quarantined(&mut *self.read().await?, after_id, limit)
            .await
            .map_err(unavailable)
    }

    /// A connection of its own, outside the pool and the writer, for long jobs
    /// that take the write lock one transaction at a time.
    async fn own_connection(&self) -> Result<SqliteConnection, StoreError> {
        SqliteConnection::connect_with(&self.options)
            .await
            .map_err(unavailable)
    }

    /// Runs `work` in one write transaction on a connection of its own: the
    /// webhook's writer waits for this one transaction at most, never for a
    /// queue of them.
    async fn in_own_transaction<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut connection = self.own_connection().await?;
        let mut tx = connection
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let out = work(&mut tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        let _ = connection.close().await;
        Ok(out)
    }

    async fn read(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        self.readers.pool().acquire().await.map_err(unavailable)
    }

    pub(super) async fn rescinded_consents(
        &self,
        app_transaction_ids: &[String],
    ) -> Result<Vec<RescindedConsent>, StoreError> {
        read::rescinded_consents(&mut *self.read().await?, app_transaction_ids)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn ledger_items(
        &self,
        query: &ItemQuery,
    ) -> Result<Vec<LedgerItem>, StoreError> {
        read::items_where(&mut *self.read().await?, query)
            .await
            .map_err(unavailable)
    }

    /// In one read transaction (see read::subscription_history).
    pub(super) async fn history(
        &self,
        original_transaction_id: &str,
    ) -> Result<SubscriptionHistory, StoreError> {
        let mut connection = self.read().await?;
        let mut tx = connection.begin().await.map_err(unavailable)?;
        let history = read::subscription_history(&mut tx, original_transaction_id)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(history)
    }

    pub(super) async fn scan_ledger(
        &self,
        after: Option<&(String, String)>,
        limit: i64,
    ) -> Result<Vec<LedgerItem>, StoreError> {
        findings::scan(&mut *self.read().await?, after, limit)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn unknown_shapes(&self) -> Result<Vec<UnknownShape>, StoreError> {
        findings::unknown_shapes(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn unfolded(&self) -> Result<Vec<UnfoldedNotification>, StoreError> {
        findings::unfolded(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn conflicts(&self) -> Result<Vec<Conflict>, StoreError> {
        findings::conflicts(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn open_finding_keys(
        &self,
        subject: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        findings::open_finding_keys(&mut *self.read().await?, subject)
            .await
            .map_err(unavailable)
    }

    /// Resolves these open findings, in one short transaction.
    pub(super) async fn resolve_findings(
        &self,
        keys: &[(String, String)],
        now: i64,
        resolution: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.in_own_transaction(async |tx| {
            findings::resolve_findings(tx, keys, now, resolution).await
        })
        .await
    }

    pub(super) async fn attribute_resolution(
        &self,
        subject: &str,
        since: i64,
        resolution: &str,
    ) -> Result<u64, StoreError> {
        self.in_own_transaction(async |tx| {
            findings::attribute_resolution(tx, subject, since, resolution).await
        })
        .await
    }

    /// Sees these findings again or opens them, in one short transaction.
    pub(super) async fn upsert_findings(
        &self,
        records: &[Finding],
        now: i64,
    ) -> Result<u64, StoreError> {
        self.in_own_transaction(async |tx| findings::upsert_findings(tx, records, now).await)
            .await
    }

    pub(super) async fn findings(
        &self,
        filter: &FindingFilter,
    ) -> Result<Vec<FindingEntry>, StoreError> {
        findings::findings(&mut *self.read().await?, filter)
            .await
            .map_err(unavailable)
    }

    /// One read transaction, so that the figures belong together.
    pub(super) async fn totals(&self) -> Result<Totals, StoreError> {
        let mut connection = self.read().await?;
        let mut tx = connection.begin().await.map_err(unavailable)?;
        let named: Vec<(String, i64)> = sqlx::query_as("SELECT name, value FROM totals")
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        let open_findings =
            sqlx::query_as("SELECT kind, open FROM open_findings WHERE open > 0 ORDER BY kind")
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

    pub(super) async fn refunds(
        &self,
        filter: &RefundFilter,
    ) -> Result<Vec<RefundEntry>, StoreError> {
        read::refunds(&mut *self.read().await?, filter)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn snapshot(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        read::snapshot(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn rebuild(
        &self,
        mut progress: impl FnMut(u64, u64),
        stop: &crate::stop::Stop,
    ) -> Result<Rebuilt, StoreError> {
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications WHERE original_transaction_id IS NOT NULL",
        )
        .fetch_one(&self.readers.pool())
        .await
        .map_err(unavailable)?;
        let total = u64::try_from(total).unwrap_or(0);
        // Its own connection: a long job should not hold up the writer's queue,
        // only take the write lock for one chunk at a time.
        let mut connection = self.own_connection().await?;
        let mut after = String::new();
        let mut done = 0u64;
        let complete = loop {
            if stop.is_cancelled() {
                break false;
            }
            let mut tx = connection
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(unavailable)?;
            let (last, folded) = fold::rebuild_chunk(&mut *tx, &after, 2_000)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            done += folded;
            progress(done, total);
            match last {
                Some(last) => after = last,
                None => break true,
            }
        };
        let _ = connection.close().await;
        Ok(Rebuilt {
            notifications: done,
            complete,
        })
    }

    pub(super) async fn import(
        &self,
        notifications: &[NewNotification],
    ) -> Result<u64, StoreError> {
        self.in_own_transaction(async |tx| {
            let mut stored = 0;
            for n in notifications {
                if tx.insert_notification(n, None).await? == Recorded::Stored {
                    stored += 1;
                }
            }
            Ok(stored)
        })
        .await
    }

    pub(super) async fn counts(&self) -> Result<Counts, StoreError> {
        read::counts(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }

    /// Healthy means a notification could be stored now: the pool reads and
    /// the writer can take the write lock.
    pub(super) async fn health(&self, now: i64) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM notifications LIMIT 1")
            .fetch_optional(&self.readers.pool())
            .await
            .map_err(unavailable)?;
        self.write(WriteOp::Probe(now)).await.map(|_| ())
    }

    pub(super) async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.writer.send(Job::Shutdown(done)).await.is_ok() {
            let _ = finished.await;
        }
        self.readers.close().await;
    }
}

async fn run_writer(
    options: SqliteConnectOptions,
    readers: readers::Readers,
    mut jobs: mpsc::Receiver<Job>,
    batch_sizes: crate::store::WriteBatchSizes,
) {
    let mut connection: Option<SqliteConnection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut shutdown = None;
    while let Some(job) = jobs.recv().await {
        let mut next = Some(job);
        while let Some(job) = next.take() {
            match job {
                Job::Write(op, reply) => batch.push((op, reply)),
                Job::Shutdown(done) => {
                    shutdown = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = jobs.try_recv().ok();
            }
        }
        crate::store::drop_abandoned(&mut batch);
        if !batch.is_empty() {
            let ops: Vec<&WriteOp> = batch.iter().map(|(op, _)| op).collect();
            let results = match write_batch(&mut connection, &options, &ops).await {
                Ok(results) => {
                    batch_sizes.observe(ops.len() as f64);
                    results.into_iter().map(Ok).collect()
                }
                Err(failure) if failure.read_only => {
                    // Perhaps the files are writable again but this process
                    // still sees them read-only: start over with every
                    // connection, and try once more.
                    if let Some(connection) = connection.take() {
                        let _ = connection.close().await;
                    }
                    readers.replace().await;
                    match write_batch(&mut connection, &options, &ops).await {
                        Ok(results) => results.into_iter().map(Ok).collect(),
                        Err(failure) => vec![Err(failure.error); ops.len()],
                    }
                }
                // One notification the database refuses must not take the
                // others of its batch down with it (Apple retries only a few
                // times): write each alone to find out which.
                Err(failure) if !failure.systemic && ops.len() > 1 => {
                    let mut results = Vec::with_capacity(ops.len());
                    for op in &ops {
                        results.push(
                            write_batch(&mut connection, &options, &[*op])
                                .await
                                .map(|mut r| r.pop().unwrap_or(Recorded::Duplicate))
                                .map_err(|f| f.error),
                        );
                    }
                    results
                }
                Err(failure) => vec![Err(failure.error); ops.len()],
            };
            for ((_, reply), result) in batch.drain(..).zip(results) {
                if let Err(error) = &result {
                    tracing::warn!(error = %error.chain(), "write failed; nothing was stored");
                    // The connection may be broken; open a fresh one next time.
                    connection = None;
                }
                let _ = reply.send(result);
            }
        }
        if let Some(done) = shutdown.take() {
            if let Some(connection) = connection.take() {
                let _ = connection.close().await;
            }
            let _ = done.send(());
            return;
        }
    }
}

/// More than a notification writes (Apple's largest, with three certificate
/// chains, are about 19 KB signed; add the decoded copy and ledger rows): when
/// the probe fits on the disk, a notification does.
const PROBE_BYTES: i64 = 64 * 1024;

async fn probe(tx: &mut SqliteConnection, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO write_probe (id, probed_at, filler) VALUES (1, ?1, zeroblob(?2))
         ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at, filler = excluded.filler",
    )
    .bind(now)
    .bind(PROBE_BYTES)
    .execute(tx)
    .await
    .map(drop)
}

/// Why a batch failed, and whether any batch would have (the database is
/// locked, unreachable or full) or only this one.
struct BatchFailure {
    error: StoreError,
    systemic: bool,
    /// SQLITE_READONLY: the files, or this process's view of them.
    read_only: bool,
}

impl From<sqlx::Error> for BatchFailure {
    fn from(e: sqlx::Error) -> Self {
        let primary_code = match &e {
            sqlx::Error::Database(db) => db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .map(|code| code & 0xff),
            _ => None,
        };
        let systemic = match &e {
            // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR,
            // SQLITE_FULL, SQLITE_CANTOPEN
            sqlx::Error::Database(_) => {
                matches!(primary_code, Some(5 | 6 | 8 | 10 | 13 | 14))
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Configuration(_) => true,
            _ => false,
        };
        BatchFailure {
            error: unavailable(e),
            systemic,
            read_only: primary_code == Some(8),
        }
    }
}

async fn write_batch(
    connection: &mut Option<SqliteConnection>,
    options: &SqliteConnectOptions,
    ops: &[&WriteOp],
) -> Result<Vec<Recorded>, BatchFailure> {
    let connection = match connection {
        Some(connection) => connection,
        None => connection.insert(SqliteConnection::connect_with(options).await?),
    };
    // IMMEDIATE takes the write lock now, so a lock held elsewhere fails the
    // batch before anything is written (after the busy timeout).
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let result = match op {
            // The caller only needs to know that it committed.
            WriteOp::Probe(now) => probe(&mut tx, *now).await.map(|()| Recorded::Duplicate),
            WriteOp::Record(n) => fold::record(&mut *tx, n).await,
            WriteOp::Quarantine(n, reason) => fold::quarantine(&mut *tx, n, reason).await,
            WriteOp::Release(id, n) => fold::release(&mut *tx, *id, n).await,
        };
        results.push(result?);
    }
    tx.commit().await?;
    Ok(results)
}
