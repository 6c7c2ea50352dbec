//! Reconciliation: ask Apple how a subscription stands (Get All Subscription
//! Statuses, and Transaction History for renewals the ledger never saw),
//! keep the verified answer as evidence, fold it by its signedDate, and
//! settle the findings it answers.

use ring::digest::{digest, SHA256};
use serde_json::json;

use super::SyncError;
use crate::appstore_api::{AppStoreApi, Client, Error as ApiError};
use crate::check::{check_item, resolution, Tolerances};
use crate::finding::FindingKind;
use crate::ingest::Ingest;
use crate::jws::unverified_signed_date;
use crate::ledger::{sources, Event, EventData, ItemKey, RenewalFacts, State, TransactionFacts};
use crate::model::{Environment, NotificationType};
use crate::store::{FindingFilter, ItemQuery, NewEvidence, Store};

/// What reconciling one subscription did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconciled {
    pub original_transaction_id: String,
    /// Answers kept that were not kept before.
    pub evidence_stored: u64,
    /// Findings settled, with how (`CONFIRMED_BY_APPLE`, `CORRECTED_FROM_APPLE`).
    pub resolved: Vec<(String, &'static str)>,
    /// Findings Apple's answer did not settle.
    pub still_open: Vec<String>,
}

/// The findings a status answer can settle: silences, and a refund whose
/// notification never came.
const ANSWERABLE: [FindingKind; 5] = [
    FindingKind::RefundWithoutExpiration,
    FindingKind::RenewalOutcomeOverdue,
    FindingKind::ExpirationOverdue,
    FindingKind::GracePeriodOverrun,
    FindingKind::MissingRefundNotification,
];

/// Reconciles one subscription.
pub async fn reconcile(
    api: &AppStoreApi,
    ingest: &Ingest,
    store: &Store,
    original_transaction_id: &str,
    tolerances: &Tolerances,
) -> Result<Reconciled, SyncError> {
    let item = ItemKey::Subscription(original_transaction_id.to_owned());
    let before = state_of(store, original_transaction_id).await?;
    let answered = first_that_knows(candidates(api, before.as_ref()), |client| {
        ask(
            client,
            ingest,
            store,
            original_transaction_id,
            before.as_ref(),
        )
    })
    .await?;
    let Some((_, evidence)) = answered else {
        return Err(SyncError::UnknownSubscription(
            original_transaction_id.to_owned(),
        ));
    };
    let folded_at = store.clock().now().as_millis();
    let evidence_stored = store.record_evidence(&evidence).await?;
    let after = state_of(store, original_transaction_id).await?;
    let how = resolution(before.as_ref(), after.as_ref());

    let now = store.clock().now().as_millis();
    let current = after
        .as_ref()
        .map(|state| check_item(&item, state, now, tolerances))
        .unwrap_or_default();
    let open = store
        .open_finding_keys(Some(original_transaction_id))
        .await?;
    let settled = crate::check::vanished(&open, &current);
    store.resolve_findings(&settled, now, Some(how)).await?;
    store
        .attribute_resolution(original_transaction_id, folded_at, how)
        .await?;
    let still_open: Vec<String> = current.iter().map(|f| f.kind.code().to_owned()).collect();
    store.upsert_findings(&current, now).await?;
    Ok(Reconciled {
        original_transaction_id: original_transaction_id.to_owned(),
        evidence_stored,
        resolved: settled.into_iter().map(|(kind, _)| (kind, how)).collect(),
        still_open,
    })
}

/// How far back an unanswered refund request makes its subscription worth
/// asking about: Apple decides within days.
const REFUND_REQUEST_WATCH_MS: i64 = 14 * 86_400_000;

/// Reconciles every subscription with an open finding Apple's answer can
/// settle, and every subscription a customer asked Apple to refund (a
/// consumption request in the last 14 days) whose decision has not reached
/// us: its REFUND may be lost. Returns what each gave; one failure does not
/// stop the others.
pub async fn reconcile_open_findings(
    api: &AppStoreApi,
    ingest: &Ingest,
    store: &Store,
    tolerances: &Tolerances,
) -> Result<Vec<Result<Reconciled, (String, SyncError)>>, SyncError> {
    let open = store
        .findings(&FindingFilter {
            open: Some(true),
            limit: i64::MAX,
            ..FindingFilter::default()
        })
        .await?;
    let mut subjects: Vec<String> = open
        .into_iter()
        .filter(|f| FindingKind::from_code(&f.kind).is_some_and(|kind| ANSWERABLE.contains(&kind)))
        .filter_map(|f| f.original_transaction_id)
        .collect();
    let since = store
        .clock()
        .now()
        .as_millis()
        .saturating_sub(REFUND_REQUEST_WATCH_MS);
    subjects.extend(store.undecided_refund_requests(since).await?);
    subjects.sort();
    subjects.dedup();
    let mut results = Vec::with_capacity(subjects.len());
    for otid in subjects {
        results.push(
            reconcile(api, ingest, store, &otid, tolerances)
                .await
                .map_err(|e| (otid, e)),
        );
    }
    Ok(results)
}

async fn state_of(
    store: &Store,
    original_transaction_id: &str,
) -> Result<Option<State>, SyncError> {
    Ok(store
        .ledger_items(&ItemQuery::Subscription(original_transaction_id.to_owned()))
        .await?
        .into_iter()
        .next()
        .map(|item| item.state))
}

/// The clients to ask: the subscription's own app and environment when the
/// ledger knows them, else every configured one (Production first).
pub(super) fn candidates<'a>(api: &'a AppStoreApi, state: Option<&State>) -> Vec<&'a Client> {
    if let Some(state) = state {
        if let (Some(bundle), Some(environment)) = (&state.bundle_id, &state.environment) {
            if let Some(client) = api.client(bundle, &Environment::from_raw(environment)) {
                return vec![client];
            }
        }
    }
    let mut clients: Vec<&Client> = api.clients().collect();
    clients.sort_by_key(|c| *c.environment() != Environment::Production);
    clients
}

/// Transaction History (transactions the ledger never saw, and known ones
/// Apple has revoked since), Refund History (refunds the ledger lacks), then
/// the subscription statuses, all verified, as evidence.
async fn ask(
    client: &Client,
    ingest: &Ingest,
    store: &Store,
    original_transaction_id: &str,
    state: Option<&State>,
) -> Result<Vec<NewEvidence>, SyncError> {
    let expected = expected_identity(ingest, client)?;
    let verifier = ingest.verifier();
    let fetched_at = store.clock().now().as_millis();
    let mut evidence = Vec::new();

    let tokens = all_pages(|revision| async move {
        client
            .transaction_history(original_transaction_id, revision.as_deref())
            .await
    })
    .await?;
    let mut transactions = Vec::new();
    for token in &tokens {
        let at = unverified_signed_date(token)?;
        let t = verifier.verify_transaction(token, &expected, at)?;
        transactions.push((token, t));
    }
    let ids: Vec<String> = transactions
        .iter()
        .filter_map(|(_, t)| t.transaction_id.clone())
        .collect();
    let known = store.known_transaction_ids(&ids).await?;
    for (token, t) in transactions {
        // A transaction already folded says nothing new, unless Apple has
        // revoked it since: an older period refunded later, whose REFUND
        // never came.
        let news = match &t.transaction_id {
            Some(id) if known.contains(id) => {
                t.revocation_date.is_some() && !state.is_some_and(|s| s.knows_refund_of(id))
            }
            _ => true,
        };
        if !news {
            continue;
        }
        evidence.push(transaction_evidence(
            client,
            sources::TRANSACTION_HISTORY,
            token,
            TransactionFacts::from_decoded(&t),
            fetched_at,
        ));
    }

    // Refund History: refunds the ledger does not have (their REFUND lost).
    let refunds = match super::refunds::refund_history(
        client,
        ingest,
        store,
        original_transaction_id,
    )
    .await
    {
        Ok(refunds) => refunds,
        Err(SyncError::Apple(ApiError::TransactionNotFound { .. })) => Vec::new(),
        Err(e) => return Err(e),
    };
    evidence.extend(refunds.into_iter().filter(|e| {
        e.transaction_id
            .as_deref()
            .is_none_or(|id| !state.is_some_and(|s| s.knows_refund_of(id)))
    }));
    evidence.extend(
        statuses(
            client,
            ingest,
            &expected,
            original_transaction_id,
            fetched_at,
        )
        .await?,
    );
    Ok(evidence)
}

/// Every signed transaction of a paged answer (Transaction History, Refund
/// History), following its `revision` until Apple says there is no more.
pub(super) async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<String>, SyncError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<crate::appstore_api::HistoryResponse, ApiError>>,
{
    let mut tokens = Vec::new();
    let mut revision: Option<String> = None;
    loop {
        let answer = page(revision.clone()).await?;
        tokens.extend(answer.signed_transactions);
        if !answer.has_more || answer.revision.is_none() || answer.revision == revision {
            return Ok(tokens);
        }
        revision = answer.revision;
    }
}

/// A verified transaction Apple signed, as evidence from `source`.
pub(super) fn transaction_evidence(
    client: &Client,
    source: &'static str,
    token: &str,
    transaction: TransactionFacts,
    fetched_at: i64,
) -> NewEvidence {
    new_evidence(Answer {
        source,
        signed_data: json!({ "signedTransactionInfo": token }),
        status: None,
        transaction: Some(transaction),
        renewal: None,
        environment: client.environment().as_str().to_owned(),
        bundle_id: client.bundle_id().to_owned(),
        fetched_at,
        reported_app_account_token: None,
    })
}

/// Get All Subscription Statuses for the customer of `transaction_id`,
/// verified, as evidence.
pub(super) async fn statuses(
    client: &Client,
    ingest: &Ingest,
    expected: &crate::jws::ExpectedIdentity,
    transaction_id: &str,
    fetched_at: i64,
) -> Result<Vec<NewEvidence>, SyncError> {
    let verifier = ingest.verifier();
    let statuses = client.all_subscription_statuses(transaction_id).await?;
    let mut evidence = Vec::new();
    for group in &statuses.data {
        for last in &group.last_transactions {
            let transaction = match &last.signed_transaction_info {
                Some(token) => {
                    let at = unverified_signed_date(token)?;
                    Some(verifier.verify_transaction(token, expected, at)?)
                }
                None => None,
            };
            let renewal = match &last.signed_renewal_info {
                Some(token) => {
                    let at = unverified_signed_date(token)?;
                    Some(verifier.verify_renewal_info(token, expected, at)?)
                }
                None => None,
            };
            if transaction.is_none() && renewal.is_none() {
                continue;
            }
            evidence.push(new_evidence(Answer {
                source: sources::SUBSCRIPTION_STATUS,
                signed_data: json!({
                    "status": last.status,
                    "signedTransactionInfo": last.signed_transaction_info,
                    "signedRenewalInfo": last.signed_renewal_info,
                }),
                status: last.status,
                transaction: transaction.as_ref().map(TransactionFacts::from_decoded),
                renewal: renewal.as_ref().map(RenewalFacts::from_decoded),
                environment: client.environment().as_str().to_owned(),
                bundle_id: client.bundle_id().to_owned(),
                fetched_at,
                reported_app_account_token: None,
            }));
        }
    }
    Ok(evidence)
}

/// What Apple (or the app) said, verified, before it becomes evidence.
pub(super) struct Answer {
    pub(super) source: &'static str,
    /// The tokens as received, as JSON.
    pub(super) signed_data: serde_json::Value,
    pub(super) status: Option<crate::model::SubscriptionStatus>,
    pub(super) transaction: Option<TransactionFacts>,
    pub(super) renewal: Option<RenewalFacts>,
    pub(super) environment: String,
    pub(super) bundle_id: String,
    pub(super) fetched_at: i64,
    pub(super) reported_app_account_token: Option<String>,
}

/// Evidence whose id comes from the signed content (and the account it was
/// reported for): the same answer is kept once.
pub(super) fn new_evidence(answer: Answer) -> NewEvidence {
    let Answer {
        source,
        signed_data,
        status,
        transaction,
        renewal,
        environment,
        bundle_id,
        fetched_at,
        reported_app_account_token,
    } = answer;
    let signed_data = signed_data.to_string();
    let mut hashed = signed_data.clone();
    if let Some(token) = &reported_app_account_token {
        hashed.push('\n');
        hashed.push_str(token);
    }
    let hash = digest(&SHA256, hashed.as_bytes());
    let hex: String = hash
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let evidence_id = format!("{source}:{hex}");
    // Signed when Apple answered: the newest of the tokens' own dates.
    let signed_date = transaction
        .as_ref()
        .and_then(|t| t.signed_date)
        .max(renewal.as_ref().and_then(|r| r.signed_date))
        .unwrap_or(fetched_at);
    let original_transaction_id = transaction
        .as_ref()
        .and_then(|t| t.original_transaction_id.clone())
        .or_else(|| {
            renewal
                .as_ref()
                .and_then(|r| r.original_transaction_id.clone())
        });
    let transaction_id = transaction.as_ref().and_then(|t| t.transaction_id.clone());
    NewEvidence {
        evidence_id: evidence_id.clone(),
        source,
        original_transaction_id,
        transaction_id,
        signed_date,
        fetched_at,
        bundle_id: Some(bundle_id.clone()),
        environment: Some(environment.clone()),
        signed_data,
        event: Event {
            notification_uuid: evidence_id,
            notification_type: NotificationType::from_raw(source),
            subtype: None,
            signed_date: Some(signed_date),
            data: Some(EventData {
                bundle_id: Some(bundle_id),
                environment: Some(environment),
                status,
                signed_transaction_info: transaction,
                signed_renewal_info: renewal,
                consumption_request_reason: None,
            }),
            reported_app_account_token,
            unclaim_info: None,
        },
    }
}

/// The first of `clients` whose environment knows what `ask` asks about,
/// with its answer. Apple's 4040010 (not found) means the wrong
/// environment was asked: the next one may know it.
pub(super) async fn first_that_knows<'a, T, Fut>(
    clients: Vec<&'a Client>,
    mut ask: impl FnMut(&'a Client) -> Fut,
) -> Result<Option<(&'a Client, T)>, SyncError>
where
    Fut: std::future::Future<Output = Result<T, SyncError>>,
{
    for client in clients {
        match ask(client).await {
            Ok(answer) => return Ok(Some((client, answer))),
            Err(SyncError::Apple(ApiError::TransactionNotFound { .. })) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// What the signed data of `client`'s app must say.
pub(super) fn expected_identity(
    ingest: &Ingest,
    client: &Client,
) -> Result<crate::jws::ExpectedIdentity, SyncError> {
    ingest
        .expected(client.bundle_id())
        .cloned()
        .ok_or_else(|| SyncError::NotConfigured {
            bundle_id: client.bundle_id().to_owned(),
            environment: client.environment().as_str().to_owned(),
        })
}
