//! Scanning the whole ledger, once (the `check` command) or periodically
//! (`serve`, which keeps the findings).

use std::time::Duration;

use super::{check_item, Finding, FindingKind, Tolerances};
use crate::ledger::Products;
use crate::metrics::Metrics;
use crate::model::Timestamp;
use crate::stop::Stop;
use crate::store::{Store, StoreError};

/// Ledger items read per page.
const PAGE: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    pub items_checked: u64,
}

/// Checks every ledger item at `at`. `progress` gets items checked so far and
/// the total. `None` when `stop` was requested before the end: a partial
/// report must not resolve the findings it did not reach.
pub async fn run(
    store: &Store,
    at: Timestamp,
    tolerances: &Tolerances,
    products: &Products,
    mut progress: impl FnMut(u64, u64),
    stop: &Stop,
) -> Result<Option<CheckReport>, StoreError> {
    let total = store.counts().await?.ledger_items;
    let total = u64::try_from(total).unwrap_or(0);
    let mut report = CheckReport::default();
    let mut after: Option<(String, String)> = None;
    // Non-renewing products sold without a configured duration: one
    // finding each, however many purchases.
    let mut unknown_durations = std::collections::BTreeMap::new();
    loop {
        if stop.is_cancelled() {
            return Ok(None);
        }
        let page = store.scan_ledger(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.item.kind().to_owned(), last.item.id().to_owned()));
        for item in &page {
            report.findings.extend(check_item(
                &item.item,
                &item.state,
                at.as_millis(),
                tolerances,
            ));
            if let Some((false, _)) = item.state.non_renewing_end(&item.item, products) {
                let s = &item.state;
                unknown_durations
                    .entry((s.bundle_id.clone(), s.product_id.clone()))
                    .or_insert_with(|| (s.environment.clone(), item.item.id().to_owned()));
            }
        }
        report.items_checked += page.len() as u64;
        progress(report.items_checked, total);
    }
    for ((bundle_id, product_id), (environment, example)) in unknown_durations {
        let product_id = product_id.unwrap_or_default();
        report.findings.push(Finding {
            kind: FindingKind::NonRenewingDurationUnknown,
            detail: format!(
                "non-renewing subscription {product_id} (transaction {example}, and any others) is entitled with no end: set its duration in [[apps.products]] (product_id = \"{product_id}\", duration = \"P1M\" or as sold)"
            ),
            subject: product_id,
            original_transaction_id: None,
            bundle_id,
            environment,
        });
    }
    for conflict in store.conflicts().await? {
        report.findings.push(Finding {
            kind: FindingKind::ConflictingDuplicate,
            subject: conflict.notification_uuid.clone(),
            original_transaction_id: conflict.original_transaction_id,
            bundle_id: conflict.bundle_id,
            environment: conflict.environment,
            detail: format!(
                "notificationUUID {} arrived {} more time(s) with different content; the first stored is authoritative",
                conflict.notification_uuid, conflict.versions
            ),
        });
    }
    for missed in store.consumption_missed(at.as_millis()).await? {
        report.findings.push(Finding {
            kind: FindingKind::ConsumptionDeadlineMissed,
            detail: crate::finding::clip(
                &format!(
                    "Apple asked about transaction {} at {} and waited until {}; no answer was accepted{}",
                    missed.transaction_id,
                    missed.requested_at,
                    missed.deadline,
                    missed
                        .last_error
                        .as_deref()
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                ),
                crate::finding::MAX_DETAIL_CHARS,
            ),
            subject: missed.notification_uuid,
            original_transaction_id: missed.original_transaction_id,
            bundle_id: missed.bundle_id,
            environment: missed.environment,
        });
    }
    // Judged again by this version: once it knows the shape, no finding.
    for shape in store.unknown_shapes().await? {
        let Some(what) = serde_json::from_str(&shape.payload)
            .ok()
            .and_then(|payload| crate::model::novelty(&payload))
        else {
            continue;
        };
        report.findings.push(Finding {
            kind: FindingKind::UnknownNotificationShape,
            detail: crate::finding::clip(
                &format!(
                    "notificationUUID {} was stored and acknowledged, but this version does not know its {what}: it is kept whole and folded as far as its known facts go; upgrade, then run `rebuild`",
                    shape.notification_uuid
                ),
                crate::finding::MAX_DETAIL_CHARS,
            ),
            subject: shape.notification_uuid,
            original_transaction_id: shape.original_transaction_id,
            bundle_id: shape.bundle_id,
            environment: shape.environment,
        });
    }
    for unfolded in store.unfolded().await? {
        report.findings.push(Finding {
            kind: FindingKind::UnfoldedNotification,
            subject: unfolded.notification_uuid.clone(),
            original_transaction_id: unfolded.original_transaction_id,
            bundle_id: unfolded.bundle_id,
            environment: unfolded.environment,
            detail: format!(
                "notificationUUID {} is stored but not folded into the ledger: {}",
                unfolded.notification_uuid, unfolded.reason
            ),
        });
    }
    report
        .findings
        .sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
    Ok(Some(report))
}

/// What a sync of findings changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncSummary {
    pub opened: u64,
    pub resolved: u64,
}

/// Findings written per transaction: small enough that the webhook's writer
/// never waits long for the lock, whatever the number of findings.
const SYNC_BATCH: usize = 500;

/// Makes the kept findings those of `records` at `now`: vanished ones
/// resolved, the others seen again or opened, in small transactions.
pub async fn sync_findings(
    store: &Store,
    records: &[Finding],
    now: i64,
) -> Result<SyncSummary, StoreError> {
    let open = store.open_finding_keys(None).await?;
    let vanished = super::vanished(&open, records);
    let mut summary = SyncSummary::default();
    for batch in vanished.chunks(SYNC_BATCH) {
        summary.resolved += store.resolve_findings(batch, now, None).await?;
    }
    for batch in records.chunks(SYNC_BATCH) {
        summary.opened += store.upsert_findings(batch, now).await?;
    }
    Ok(summary)
}

/// Runs the check every `interval` until `stop` fires, keeping the findings in
/// the store: new ones are opened, known ones seen again, vanished ones resolved.
pub fn spawn_periodic(
    store: Store,
    tolerances: Tolerances,
    products: std::sync::Arc<Products>,
    interval: Duration,
    metrics: std::sync::Arc<Metrics>,
    lease: crate::lease::JobLease,
    stop: Stop,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // Another instance on this database checks while it holds the lease.
            if lease.hold().await
                && !check_once(&store, &tolerances, &products, &metrics, &stop).await
            {
                lease.release().await;
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => {
                    lease.release().await;
                    return;
                }
            }
        }
    })
}

/// One periodic check, its findings kept; false when a stop interrupted it.
async fn check_once(
    store: &Store,
    tolerances: &Tolerances,
    products: &Products,
    metrics: &Metrics,
    stop: &Stop,
) -> bool {
    let now = store.clock().now();
    match run(store, now, tolerances, products, |_, _| {}, stop).await {
        Ok(None) => return false,
        Ok(Some(report)) => {
            let records = &report.findings;
            match sync_findings(store, records, now.as_millis()).await {
                Ok(summary) => {
                    metrics.check("completed");
                    tracing::info!(
                        items = report.items_checked,
                        open = records.len(),
                        opened = summary.opened,
                        resolved = summary.resolved,
                        "inconsistency check"
                    );
                }
                Err(error) => {
                    metrics.check("failed");
                    tracing::warn!(%error, "inconsistency check could not save its findings");
                }
            }
        }
        Err(error) => {
            metrics.check("failed");
            tracing::warn!(%error, "inconsistency check failed");
        }
    }
    true
}
