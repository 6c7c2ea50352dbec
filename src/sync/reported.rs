//! Purchases reported by the app: the proof StoreKit gives the app the
//! moment a purchase completes, forwarded by a backend, verified and folded
//! at once, so access is granted before Apple's notification arrives.

use serde_json::json;

use super::reconcile::{
    candidates, expected_identity, first_that_knows, new_evidence, statuses, Answer,
};
use super::SyncError;
use crate::appstore_api::AppStoreApi;
use crate::ingest::Ingest;
use crate::jws::unverified_signed_date;
use crate::ledger::{sources, ItemKey, RenewalFacts, State, TransactionFacts};
use crate::model::{receipt_purchases, InAppOwnershipType, ProductType};
use crate::store::{ItemQuery, NewEvidence, Store};

/// What a backend forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppReport {
    /// StoreKit's `Transaction.jwsRepresentation`, and the renewal info.
    Signed {
        signed_transaction: String,
        signed_renewal_info: Option<String>,
    },
    /// A transaction id, asked of Apple.
    TransactionId(String),
    /// A legacy receipt: its latest in-app purchase is asked of Apple.
    Receipt(Vec<u8>),
}

/// What the report produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOutcome {
    pub item: ItemKey,
    pub state: State,
    /// New evidence was kept (false: the same proof was reported before).
    pub stored: bool,
    /// The appAccountToken Apple signed into the transaction, when the
    /// backend reported another.
    pub app_account_token_mismatch: Option<(String, Option<String>)>,
}

pub async fn report(
    api: &AppStoreApi,
    ingest: &Ingest,
    store: &Store,
    report: AppReport,
    app_account_token: Option<String>,
) -> Result<ReportOutcome, SyncError> {
    let now = store.clock().now();
    let (evidence, transaction) = match report {
        AppReport::Signed {
            signed_transaction,
            signed_renewal_info,
        } => {
            let reported =
                ingest.verify_reported(&signed_transaction, signed_renewal_info.as_deref(), now)?;
            let transaction = TransactionFacts::from_decoded(&reported.transaction);
            let evidence = new_evidence(Answer {
                source: sources::APP_REPORTED,
                signed_data: json!({
                    "signedTransaction": signed_transaction,
                    "signedRenewalInfo": signed_renewal_info,
                }),
                status: None,
                transaction: Some(transaction.clone()),
                renewal: reported
                    .renewal_info
                    .as_ref()
                    .map(RenewalFacts::from_decoded),
                environment: reported.environment,
                bundle_id: reported.bundle_id,
                fetched_at: now.as_millis(),
                reported_app_account_token: app_account_token.clone(),
            });
            (vec![evidence], transaction)
        }
        AppReport::TransactionId(id) => {
            ask_apple(api, ingest, &id, app_account_token.clone(), now.as_millis()).await?
        }
        AppReport::Receipt(receipt) => {
            let purchases = receipt_purchases(&receipt)?;
            let latest = purchases.last().ok_or(SyncError::EmptyReceipt)?;
            ask_apple(
                api,
                ingest,
                &latest.transaction_id,
                app_account_token.clone(),
                now.as_millis(),
            )
            .await?
        }
    };
    let stored = store.record_evidence(&evidence).await? > 0;
    let item = evidence
        .first()
        .and_then(|e| e.event.item())
        .ok_or_else(|| {
            SyncError::UnknownTransaction(transaction.transaction_id.clone().unwrap_or_default())
        })?;
    let query = match &item {
        ItemKey::Subscription(id) => ItemQuery::Subscription(id.clone()),
        ItemKey::Purchase(id) => ItemQuery::Purchase(id.clone()),
    };
    let state = store
        .ledger_items(&query)
        .await?
        .into_iter()
        .next()
        .map(|i| i.state)
        .ok_or_else(|| SyncError::UnknownTransaction(item.id().to_owned()))?;
    // Only a token Apple signed can disagree: a family member's transaction
    // or one signed without a token is linked to the reported account.
    let family = transaction.in_app_ownership_type == Some(InAppOwnershipType::FamilyShared);
    let app_account_token_mismatch = app_account_token
        .filter(|reported| {
            !family
                && transaction
                    .app_account_token
                    .as_ref()
                    .is_some_and(|signed| signed != reported)
        })
        .map(|reported| (reported, transaction.app_account_token.clone()));
    Ok(ReportOutcome {
        item,
        state,
        stored,
        app_account_token_mismatch,
    })
}

/// Get Transaction Info (then, for a subscription, its status) from the
/// environment that knows the transaction.
async fn ask_apple(
    api: &AppStoreApi,
    ingest: &Ingest,
    transaction_id: &str,
    app_account_token: Option<String>,
    fetched_at: i64,
) -> Result<(Vec<NewEvidence>, TransactionFacts), SyncError> {
    if api.is_empty() {
        return Err(SyncError::ApiNotConfigured);
    }
    let found = first_that_knows(candidates(api, None), |client| async move {
        Ok(client.transaction_info(transaction_id).await?)
    })
    .await?;
    let Some((client, info)) = found else {
        return Err(SyncError::UnknownTransaction(transaction_id.to_owned()));
    };
    let expected = expected_identity(ingest, client)?;
    let token = &info.signed_transaction_info;
    let at = unverified_signed_date(token)?;
    let decoded = ingest.verifier().verify_transaction(token, &expected, at)?;
    let transaction = TransactionFacts::from_decoded(&decoded);
    let mut evidence = vec![new_evidence(Answer {
        source: sources::TRANSACTION_INFO,
        signed_data: json!({ "signedTransactionInfo": token }),
        status: None,
        transaction: Some(transaction.clone()),
        renewal: None,
        environment: client.environment().as_str().to_owned(),
        bundle_id: client.bundle_id().to_owned(),
        fetched_at,
        reported_app_account_token: app_account_token,
    })];
    if matches!(
        transaction.product_type,
        Some(ProductType::AutoRenewableSubscription) | None
    ) {
        evidence.extend(statuses(client, ingest, &expected, transaction_id, fetched_at).await?);
    }
    Ok((evidence, transaction))
}
