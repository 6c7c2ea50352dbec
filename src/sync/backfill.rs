//! Backfill: page Apple's Notification History and store what the webhook
//! missed, through the webhook's own path. A run keeps its pagination token
//! after each page, so an interrupted one continues where it stopped.

use super::SyncError;
use crate::appstore_api::{Client, NotificationHistoryRequest};
use crate::ingest::{Ingest, Ingested};
use crate::jws::unverified_signed_date;
use crate::stop::Stop;
use crate::store::{BackfillRequest, BackfillRun, Recorded, Store};

/// What to ask Notification History for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillWindow {
    /// Milliseconds.
    pub since: i64,
    /// Milliseconds; `None`: until now (fixed when the run begins).
    pub until: Option<i64>,
    pub only_failures: bool,
}

/// How a backfill went, counted over the whole run (resumed ones included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackfillReport {
    pub fetched: i64,
    pub stored: i64,
    pub duplicates: i64,
    pub rejected: i64,
    /// Every page was read.
    pub complete: bool,
}

impl std::fmt::Display for BackfillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fetched {}, stored {}, duplicates {}, rejected {}",
            self.fetched, self.stored, self.duplicates, self.rejected
        )
    }
}

fn report(run: &BackfillRun, complete: bool) -> BackfillReport {
    BackfillReport {
        fetched: run.fetched,
        stored: run.stored,
        duplicates: run.duplicates,
        rejected: run.rejected,
        complete,
    }
}

/// Pages Notification History for `client`'s app and environment and stores
/// each notification as the webhook would: verified at its signedDate
/// (history holds old payloads), duplicates changing nothing.
pub async fn backfill(
    client: &Client,
    ingest: &Ingest,
    store: &Store,
    window: &BackfillWindow,
    mut progress: impl FnMut(&BackfillReport),
    stop: &Stop,
) -> Result<BackfillReport, SyncError> {
    let now = store.clock().now();
    let mut run = store
        .backfill_run(
            &BackfillRequest {
                bundle_id: client.bundle_id().to_owned(),
                environment: client.environment().as_str().to_owned(),
                start_date: window.since,
                until: window.until,
                only_failures: window.only_failures,
            },
            now.as_millis(),
        )
        .await?;
    let request = NotificationHistoryRequest {
        start_date: window.since,
        end_date: run.end_date,
        notification_type: None,
        notification_subtype: None,
        transaction_id: None,
        only_failures: window.only_failures.then_some(true),
    };
    loop {
        if stop.is_cancelled() {
            return Ok(report(&run, false));
        }
        let page = client
            .notification_history(&request, run.pagination_token.as_deref())
            .await?;
        for item in &page.notification_history {
            run.fetched += 1;
            match store_one(ingest, store, &item.signed_payload).await? {
                Some((uuid, recorded)) => {
                    match recorded {
                        Recorded::Stored => run.stored += 1,
                        Recorded::Duplicate | Recorded::AlreadyAccepted => run.duplicates += 1,
                    }
                    // Apple's attempts say whether and why our endpoint failed.
                    if let Ok(attempts) = serde_json::to_string(&item.send_attempts) {
                        store
                            .note_send_attempts(&uuid, &attempts, store.clock().now().as_millis())
                            .await?;
                    }
                }
                None => run.rejected += 1,
            }
        }
        let finished = !page.has_more || page.pagination_token.is_none();
        run.pagination_token = page.pagination_token;
        store
            .backfill_progress(&run, finished.then(|| store.clock().now().as_millis()))
            .await?;
        progress(&report(&run, finished));
        if finished {
            return Ok(report(&run, true));
        }
    }
}

/// Verifies and stores one history payload; `None` when it was rejected
/// (does not verify, or is kept in quarantine: not in the ledger).
async fn store_one(
    ingest: &Ingest,
    store: &Store,
    signed_payload: &str,
) -> Result<Option<(String, Recorded)>, SyncError> {
    let received_at = store.clock().now();
    let at = match unverified_signed_date(signed_payload) {
        Ok(at) => at,
        Err(error) => {
            tracing::warn!(code = error.code(), %error, "a history payload without a readable signedDate; rejected");
            return Ok(None);
        }
    };
    match ingest.classify(signed_payload, at, received_at) {
        Ok(Ingested::Accepted(n)) => {
            let uuid = n.notification_uuid.clone();
            Ok(Some((uuid, store.record_notification(n).await?)))
        }
        Ok(Ingested::Quarantined(n, reason)) => {
            tracing::warn!(notification_uuid = %n.notification_uuid, code = reason.code(), "a history notification this configuration does not expect; quarantined");
            store.quarantine(n, reason.reason()).await?;
            Ok(None)
        }
        Err(error) => {
            tracing::warn!(code = error.code(), %error, "a history payload does not verify; rejected");
            Ok(None)
        }
    }
}
