//! Notifications written in batches, on either backend. Writer tasks each
//! take every write waiting and commit them in one transaction: one commit
//! (on SQLite one fsync, on PostgreSQL BEGIN and COMMIT) acknowledges them
//! all, and a run of notifications of distinct items is folded together in
//! two round trips more (batch.rs). Each
//! notification is still written whole or not at all, and no answer is
//! sent before its commit.
//!
//! One behaviour on both backends: a write whose requester gave up (its
//! request already answered 503, so Apple will retry) is dropped before its
//! batch begins, and a batch whose requesters all gave up while it waited
//! for a lock is rolled back; a batch the database refuses for one
//! notification's sake is written again one notification at a time, so that
//! the others are stored. Within a batch, items are locked in key order, so
//! that batches of several writers and instances never wait on each other in
//! a circle (migrations/postgres/0003).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::batch;
use super::fold;
use super::fold_tx::LedgerTx;
use super::sql::Conn;
use super::{NewNotification, QuarantineReason, Recorded, StoreError, WriteBatchSizes};
use crate::ledger::Products;

/// Requests waiting for a writer; beyond this, senders wait (back-pressure).
const QUEUE: usize = 4096;

/// A write the writers commit in a batch.
pub(super) enum WriteOp {
    /// Writes a row larger than a notification and commits it: proves the
    /// database can accept a notification right now (the write lock, the
    /// files, the disk), at the store clock's moment.
    Probe(i64),
    /// With what non-renewing products last, for the answer the fold tells.
    Record(NewNotification, Arc<Products>),
    Quarantine(NewNotification, QuarantineReason),
    Release(i64, NewNotification, Arc<Products>),
}

impl WriteOp {
    /// Where the operation takes its item's lock in a batch; those that
    /// take none go first.
    fn lock_order(&self) -> (Option<(&'static str, String)>, String) {
        let n = match self {
            WriteOp::Record(n, _) | WriteOp::Release(_, n, _) => n,
            WriteOp::Quarantine(n, _) => return (None, n.notification_uuid.clone()),
            WriteOp::Probe(_) => return (None, String::new()),
        };
        let item = n
            .event
            .item()
            .map(|item| (item.kind(), item.id().to_owned()));
        (item, n.notification_uuid.clone())
    }

    /// Runs the operation in the caller's transaction.
    pub(super) async fn apply<C: Conn + LedgerTx>(
        &self,
        tx: &mut C,
    ) -> Result<Recorded, sqlx::Error> {
        match self {
            // The caller only needs to know that it committed.
            WriteOp::Probe(now) => tx.probe(*now).await.map(|()| Recorded::Duplicate),
            WriteOp::Record(n, products) => fold::record(tx, n, products).await,
            WriteOp::Quarantine(n, reason) => fold::quarantine(tx, n, reason).await,
            WriteOp::Release(id, n, products) => fold::release(tx, *id, n, products).await,
        }
    }
}

/// Runs a batch's `ops` in the caller's transaction, in order: a run of
/// notifications to record goes together ([`batch::record_all`]).
pub(super) async fn apply_all<C: Conn + LedgerTx>(
    tx: &mut C,
    ops: &[&WriteOp],
) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut results = Vec::with_capacity(ops.len());
    let mut rest = ops;
    while let Some((first, after)) = rest.split_first() {
        let records: Vec<(&NewNotification, &Products)> = rest
            .iter()
            .map_while(|op| match op {
                WriteOp::Record(n, products) => Some((n, &**products)),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            results.push(first.apply(tx).await?);
            rest = after;
        } else {
            results.extend(batch::record_all(tx, &records).await?);
            rest = rest.get(records.len()..).unwrap_or_default();
        }
    }
    Ok(results)
}

/// What a backend gives its writer tasks: one transaction per batch.
pub(super) trait Batches: Send + 'static {
    /// Writes `ops` in one transaction and commits it; each one's result.
    fn write(
        &mut self,
        ops: &[&WriteOp],
    ) -> impl Future<Output = Result<Vec<Recorded>, sqlx::Error>> + Send;

    /// Whether every batch would fail now (the database is unreachable,
    /// locked, read-only, full), or only this one, for something a statement
    /// said about the data it was given.
    fn systemic(error: &sqlx::Error) -> bool;

    /// After a batch failed (`Some`) or was abandoned (`None`): mends what
    /// the failure may have broken, and says whether the same batch is worth
    /// trying once more at once.
    fn mend(&mut self, failure: Option<&sqlx::Error>) -> impl Future<Output = bool> + Send;

    /// Closes the connections the writer holds.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

type Reply = oneshot::Sender<Result<Recorded, StoreError>>;

// Jobs are moved once, into the channel; boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
enum Job {
    Write(WriteOp, Reply),
    /// Stops the writer that takes it, once its batch is answered.
    Shutdown(oneshot::Sender<()>),
}

/// The writers' queue; cloned by every handle of the store.
#[derive(Debug, Clone)]
pub(super) struct Writers {
    jobs: mpsc::Sender<Job>,
    tasks: usize,
}

impl Writers {
    /// Starts a writer task on each of `backends`, taking up to `max_batch`
    /// writes at once. Each committed batch's size goes to `batch_sizes`.
    pub(super) fn start<B: Batches>(
        backends: Vec<B>,
        max_batch: usize,
        batch_sizes: WriteBatchSizes,
    ) -> Writers {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let tasks = backends.len();
        for backend in backends {
            tokio::spawn(run(
                backend,
                Arc::clone(&receiver),
                max_batch.max(1),
                batch_sizes.clone(),
            ));
        }
        Writers { jobs, tasks }
    }

    /// Hands `op` to a writer and waits for its commit.
    pub(super) async fn write(&self, op: WriteOp) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Write(op, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Answers the writes already queued, then stops every writer and closes
    /// its connections.
    pub(super) async fn close(&self) {
        let mut stopped = Vec::with_capacity(self.tasks);
        for _ in 0..self.tasks {
            let (done, finished) = oneshot::channel();
            if self.jobs.send(Job::Shutdown(done)).await.is_ok() {
                stopped.push(finished);
            }
        }
        for finished in stopped {
            let _ = finished.await;
        }
    }
}

async fn run<B: Batches>(
    mut backend: B,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_batch: usize,
    batch_sizes: WriteBatchSizes,
) {
    loop {
        let mut batch = Vec::new();
        let mut shutdown = None;
        {
            let mut receiver = receiver.lock().await;
            match receiver.recv().await {
                None => break,
                Some(Job::Shutdown(done)) => shutdown = Some(done),
                Some(Job::Write(op, reply)) => batch.push((op, reply)),
            }
            while shutdown.is_none() && batch.len() < max_batch {
                match receiver.try_recv() {
                    Ok(Job::Write(op, reply)) => batch.push((op, reply)),
                    Ok(Job::Shutdown(done)) => shutdown = Some(done),
                    Err(_) => break,
                }
            }
        }
        write_batch(&mut backend, batch, &batch_sizes).await;
        if let Some(done) = shutdown {
            backend.close().await;
            let _ = done.send(());
            return;
        }
    }
    backend.close().await;
}

async fn write_batch<B: Batches>(
    backend: &mut B,
    mut batch: Vec<(WriteOp, Reply)>,
    batch_sizes: &WriteBatchSizes,
) {
    drop_abandoned(&mut batch);
    if batch.is_empty() {
        return;
    }
    // Each key once per notification, not once per comparison.
    batch.sort_by_cached_key(|(op, _)| op.lock_order());
    let (ops, mut replies): (Vec<&WriteOp>, Vec<&mut Reply>) =
        batch.iter_mut().map(|(op, reply)| (&*op, reply)).unzip();
    // When every requester has given up (each waited behind a lock until
    // its request answered 503), the transaction is dropped and rolls back:
    // nothing is stored that was said not to be.
    let mut written = tokio::select! {
        written = backend.write(&ops) => written,
        () = all_gone(&mut replies) => {
            tracing::info!("a batch whose requesters all gave up was rolled back");
            backend.mend(None).await;
            return;
        }
    };
    if let Err(error) = &written {
        if backend.mend(Some(error)).await {
            written = backend.write(&ops).await;
            if let Err(error) = &written {
                backend.mend(Some(error)).await;
            }
        }
    }
    let results: Vec<Result<Recorded, StoreError>> = match written {
        Ok(results) => {
            batch_sizes.observe(ops.len() as f64);
            results.into_iter().map(Ok).collect()
        }
        // One notification the database refuses must not take the others
        // of its batch down with it (Apple retries only a few times): each
        // alone, to find out which.
        Err(error) if ops.len() > 1 && !B::systemic(&error) => {
            let mut results = Vec::with_capacity(ops.len());
            for op in &ops {
                let result = backend.write(&[*op]).await;
                if let Err(error) = &result {
                    backend.mend(Some(error)).await;
                }
                results.push(
                    result
                        .map(|mut r| r.pop().unwrap_or(Recorded::Duplicate))
                        .map_err(StoreError::unavailable),
                );
            }
            results
        }
        Err(error) => {
            vec![Err(StoreError::unavailable(error)); ops.len()]
        }
    };
    for ((_, reply), result) in batch.into_iter().zip(results) {
        if let Err(error) = &result {
            tracing::warn!(error = %error.chain(), "write failed; nothing was stored");
        }
        let _ = reply.send(result);
    }
}

/// Drops the writes whose requester gave up: none may be committed behind
/// its back.
fn drop_abandoned(batch: &mut Vec<(WriteOp, Reply)>) {
    batch.retain(|(_, reply)| {
        let gone = reply.is_closed();
        if gone {
            tracing::info!("a write whose requester gave up was dropped before its transaction");
        }
        !gone
    });
}

async fn all_gone(replies: &mut [&mut Reply]) {
    for reply in replies {
        reply.closed().await;
    }
}
