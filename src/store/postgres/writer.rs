//! Notifications written in batches on PostgreSQL. A few writer tasks each
//! take every request waiting and write them in one transaction, so that
//! BEGIN and COMMIT (two of the four round trips a notification takes) and
//! the commit's flush are shared. Within a batch, items are locked in key
//! order, so batches of several writers and instances never wait on each
//! other in a circle (migrations/postgres/0003).

use std::sync::Arc;

use sqlx::postgres::PgPool;
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::retry::{retryable, unavailable, ATTEMPTS};
use crate::store::fold;
use crate::store::{NewNotification, QuarantineReason, Recorded, StoreError};

/// Notifications per transaction at most: a batch holds its items' locks
/// until it commits, and a retry redoes all of it.
const MAX_BATCH: usize = 64;
/// Requests waiting for a writer; beyond this, senders wait (back-pressure).
const QUEUE: usize = 4096;

pub(super) enum WriteOp {
    Record(NewNotification),
    Quarantine(NewNotification, QuarantineReason),
    Release(i64, NewNotification),
}

impl WriteOp {
    /// Where the operation takes its item's lock in a batch; quarantine
    /// takes none and goes first.
    fn lock_order(&self) -> (Option<(&'static str, String)>, String) {
        let n = match self {
            WriteOp::Record(n) | WriteOp::Release(_, n) => n,
            WriteOp::Quarantine(n, _) => return (None, n.notification_uuid.clone()),
        };
        let item = n
            .event
            .item()
            .map(|item| (item.kind(), item.id().to_owned()));
        (item, n.notification_uuid.clone())
    }
}

type Reply = oneshot::Sender<Result<Recorded, StoreError>>;
type Job = (WriteOp, Reply);

/// The writers' queue and their connections; the tasks stop when the last
/// sender is gone.
#[derive(Debug, Clone)]
pub(super) struct Writers {
    jobs: mpsc::Sender<Job>,
    pool: PgPool,
}

impl Writers {
    /// Starts `count` writer tasks on `pool`.
    /// Each committed batch's size goes to `batch_sizes`.
    pub(super) fn start(
        pool: PgPool,
        count: usize,
        batch_sizes: crate::store::WriteBatchSizes,
    ) -> Writers {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..count.max(1) {
            tokio::spawn(run(
                pool.clone(),
                Arc::clone(&receiver),
                batch_sizes.clone(),
            ));
        }
        Writers { jobs, pool }
    }

    /// Closes the writers' connections (after the last write was answered).
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    /// Hands `op` to a writer and waits for its commit.
    pub(super) async fn write(&self, op: WriteOp) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((op, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    batch_sizes: crate::store::WriteBatchSizes,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        crate::store::drop_abandoned(&mut batch);
        if batch.is_empty() {
            continue;
        }
        // Each key once per notification, not once per comparison.
        batch.sort_by_cached_key(|(op, _)| op.lock_order());
        let (ops, mut replies): (Vec<&WriteOp>, Vec<&mut Reply>) =
            batch.iter_mut().map(|(op, reply)| (&*op, reply)).unzip();
        // When every requester has given up (each waited behind a lock
        // until its request answered 503), the transaction is dropped and
        // rolls back: nothing is stored that was said not to be.
        let written = tokio::select! {
            written = write_batch(&pool, &ops) => written,
            () = all_gone(&mut replies) => {
                tracing::info!("a batch whose requesters all gave up was rolled back");
                continue;
            }
        };
        let results: Vec<Result<Recorded, StoreError>> = match written {
            Ok(results) => {
                batch_sizes.observe(ops.len() as f64);
                results.into_iter().map(Ok).collect()
            }
            // One notification the database refuses must not take the others
            // of its batch down with it: each alone, to find out which.
            Err(error) if ops.len() > 1 && !systemic(&error) => {
                let mut results = Vec::with_capacity(ops.len());
                for op in &ops {
                    results.push(
                        write_batch(&pool, &[*op])
                            .await
                            .map(|mut r| r.pop().unwrap_or(Recorded::Duplicate))
                            .map_err(unavailable),
                    );
                }
                results
            }
            Err(error) => {
                let error = unavailable(error);
                vec![Err(error); ops.len()]
            }
        };
        for ((_, reply), result) in batch.into_iter().zip(results) {
            if let Err(error) = &result {
                tracing::warn!(error = %error.chain(), "write failed; nothing was stored");
            }
            let _ = reply.send(result);
        }
    }
}

async fn all_gone(replies: &mut [&mut Reply]) {
    for reply in replies {
        reply.closed().await;
    }
}

/// Whether every batch would fail now (the database is unreachable, shut
/// down, out of resources, or waiting on a lock), or only this one: an
/// error a statement raised about the data it was given (a value it
/// cannot hold, a constraint, a trigger that refuses it, a row over a
/// limit), which writing each notification alone pins to one of them.
fn systemic(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => !matches!(
            db.code().as_deref().and_then(|code| code.get(..2)),
            // triggered action, data, integrity, triggered data change,
            // SQL routine, external routine, external routine invocation,
            // check option, program limit, PL/pgSQL (RAISE).
            Some("09" | "22" | "23" | "27" | "2F" | "38" | "39" | "44" | "54" | "P0")
        ),
        _ => true,
    }
}

/// The batch in one transaction, again when it met a concurrent one.
async fn write_batch(pool: &PgPool, ops: &[&WriteOp]) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_batch(pool, ops).await {
            Err(error) if retryable(&error) && attempt < ATTEMPTS => {
                tracing::debug!(%error, attempt, "batch met a concurrent one; again");
            }
            done => return done,
        }
    }
}

async fn try_batch(pool: &PgPool, ops: &[&WriteOp]) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    let mut tx = connection.begin().await?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        results.push(match op {
            WriteOp::Record(n) => fold::record(&mut *tx, n).await?,
            WriteOp::Quarantine(n, reason) => fold::quarantine(&mut *tx, n, reason).await?,
            WriteOp::Release(id, n) => fold::release(&mut *tx, *id, n).await?,
        });
    }
    tx.commit().await?;
    Ok(results)
}
