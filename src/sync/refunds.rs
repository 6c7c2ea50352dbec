//! Every refund learned: Get Refund History for each subscription (or one),
//! each refunded transaction Apple signs verified and kept as evidence. The
//! ledger folds it like any signed transaction (the period is revoked, so
//! entitlement ends at `revocationDate`), and a refund no REFUND
//! notification reported is then the checker's MISSING_REFUND_NOTIFICATION
//! for that transaction: a lost push, found.

use super::reconcile::{
    all_pages, candidates, expected_identity, first_that_knows, transaction_evidence,
};
use super::SyncError;
use crate::appstore_api::{AppStoreApi, Client};
use crate::ingest::Ingest;
use crate::jws::unverified_signed_date;
use crate::ledger::{sources, ItemKey, TransactionFacts};
use crate::store::{ItemQuery, LedgerItem, NewEvidence, Store};

/// Subscriptions per page of the ledger's scan.
const SCAN_PAGE: i64 = 500;

/// What a run found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefundsReport {
    /// Subscriptions asked about.
    pub subscriptions: u64,
    /// Refunded transactions Apple listed.
    pub refunded: u64,
    /// Of those, the ones new here (the rest were kept before).
    pub stored: u64,
}

/// Asks Apple for the refund history of `original_transaction_id`, or of
/// every subscription the ledger knows whose last signed date is at or
/// after `since`; `progress` hears of each subscription done.
pub async fn refunds_backfill(
    api: &AppStoreApi,
    ingest: &Ingest,
    store: &Store,
    original_transaction_id: Option<&str>,
    since: Option<i64>,
    mut progress: impl FnMut(&RefundsReport),
) -> Result<RefundsReport, SyncError> {
    if api.is_empty() {
        return Err(SyncError::ApiNotConfigured);
    }
    let mut report = RefundsReport::default();
    if let Some(id) = original_transaction_id {
        let known = store
            .ledger_items(&ItemQuery::Subscription(id.to_owned()))
            .await?;
        let found = learn(api, ingest, store, id, known.first(), &mut report).await?;
        if !found {
            return Err(SyncError::UnknownSubscription(id.to_owned()));
        }
        progress(&report);
        return Ok(report);
    }
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store.scan_ledger(after.as_ref(), SCAN_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(report);
        };
        after = Some((last.item.kind().to_owned(), last.item.id().to_owned()));
        for item in &page {
            let ItemKey::Subscription(id) = &item.item else {
                continue;
            };
            if since.is_some_and(|since| item.state.last_signed_date < since) {
                continue;
            }
            learn(api, ingest, store, id, Some(item), &mut report).await?;
            progress(&report);
        }
    }
}

/// One subscription's refund history, kept; false when no configured app
/// and environment knows it.
async fn learn(
    api: &AppStoreApi,
    ingest: &Ingest,
    store: &Store,
    original_transaction_id: &str,
    item: Option<&LedgerItem>,
    report: &mut RefundsReport,
) -> Result<bool, SyncError> {
    let clients = candidates(api, item.map(|item| &item.state));
    let found = first_that_knows(clients, |client| {
        refund_history(client, ingest, store, original_transaction_id)
    })
    .await?;
    let Some((_, evidence)) = found else {
        return Ok(false);
    };
    report.subscriptions = report.subscriptions.saturating_add(1);
    report.refunded = report
        .refunded
        .saturating_add(u64::try_from(evidence.len()).unwrap_or(u64::MAX));
    let stored = store.record_evidence(&evidence).await?;
    report.stored = report.stored.saturating_add(stored);
    Ok(true)
}

/// Every page of Get Refund History, each transaction verified.
pub(super) async fn refund_history(
    client: &Client,
    ingest: &Ingest,
    store: &Store,
    original_transaction_id: &str,
) -> Result<Vec<NewEvidence>, SyncError> {
    let expected = expected_identity(ingest, client)?;
    let verifier = ingest.verifier();
    let fetched_at = store.clock().now().as_millis();
    let tokens = all_pages(|revision| async move {
        client
            .refund_history(original_transaction_id, revision.as_deref())
            .await
    })
    .await?;
    let mut evidence = Vec::with_capacity(tokens.len());
    for token in &tokens {
        let at = unverified_signed_date(token)?;
        let t = verifier.verify_transaction(token, &expected, at)?;
        evidence.push(transaction_evidence(
            client,
            sources::REFUND_HISTORY,
            token,
            TransactionFacts::from_decoded(&t),
            fetched_at,
        ));
    }
    Ok(evidence)
}
