//! The refund desk's part of the store: consumption requests, consents and
//! facts (statements in sql/consumption.rs).

use super::*;

row_struct! {
/// A consumption request (CONSUMPTION_REQUEST) with what came of it, the
/// customer's consent and the facts known for its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumptionRequestEntry {
    pub notification_uuid: String,
    pub transaction_id: String,
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    pub product_id: Option<String>,
    pub product_type: Option<String>,
    pub in_app_ownership_type: Option<String>,
    pub app_account_token: Option<String>,
    pub purchase_date: Option<i64>,
    pub expires_date: Option<i64>,
    /// consumptionRequestReason.
    pub reason: Option<String>,
    pub requested_at: i64,
    pub received_at: i64,
    pub deadline: i64,
    /// OPEN, SENT, NOT_SENT or MISSED.
    pub state: String,
    /// While OPEN, what it waits for; NOT_SENT, why not.
    pub why: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub send_now_by: Option<String>,
    /// The body sent to Apple, as sent.
    pub sent_body: Option<String>,
    pub sent_at: Option<i64>,
    /// Apple's HTTP status for the answer that went (202).
    pub apple_status: Option<i64>,
    pub closed_at: Option<i64>,
    /// REFUND or REFUND_DECLINED: the first of the transaction's
    /// notifications of those types signed after the request.
    pub outcome: Option<String>,
    pub outcome_date: Option<i64>,
    pub consent: Option<bool>,
    pub consent_recorded_at: Option<i64>,
    pub facts_delivery_status: Option<String>,
    pub facts_consumption_percentage: Option<i64>,
    pub facts_sample_content_provided: Option<bool>,
    pub facts_refund_preference: Option<String>,
    pub facts_recorded_at: Option<i64>,
    pub facts_recorded_by: Option<String>,
}
}

/// Which consumption requests to list.
#[derive(Debug, Clone, Default)]
pub struct ConsumptionFilter {
    /// Only OPEN ones (true), only closed ones (false), or all.
    pub open: Option<bool>,
    pub original_transaction_id: Option<String>,
    pub transaction_id: Option<String>,
    pub limit: i64,
}

/// What the consumption job did about a request it claimed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumptionProgress {
    /// OPEN (still), SENT, NOT_SENT or MISSED.
    pub state: &'static str,
    pub why: Option<&'static str>,
    /// Whether Apple was asked this time.
    pub attempted: bool,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub sent_body: Option<String>,
    pub sent_at: Option<i64>,
    pub apple_status: Option<i64>,
    pub closed_at: Option<i64>,
}

/// Facts for a transaction's answer, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewConsumptionFacts {
    pub transaction_id: String,
    pub delivery_status: Option<String>,
    pub consumption_percentage: Option<i64>,
    pub sample_content_provided: Option<bool>,
    pub refund_preference: Option<String>,
    pub recorded_at: i64,
    /// `backend`, or `console:<user>`.
    pub recorded_by: String,
}

impl Store {
    /// Consumption requests, as `filter` says.
    pub async fn consumption_requests(
        &self,
        filter: &ConsumptionFilter,
    ) -> Result<Vec<ConsumptionRequestEntry>, StoreError> {
        on_read!(self, |conn| Sql::consumption_requests(conn, filter).await)
    }

    /// The requests each of two filters takes, read from one snapshot: a
    /// request answered meanwhile shows under one filter, never under both
    /// or neither (the refund desk lists open and closed ones side by side).
    pub async fn consumption_requests_together(
        &self,
        first: &ConsumptionFilter,
        second: &ConsumptionFilter,
    ) -> Result<(Vec<ConsumptionRequestEntry>, Vec<ConsumptionRequestEntry>), StoreError> {
        on_snapshot!(self, |conn| {
            let a = Sql::consumption_requests(&mut *conn, first).await?;
            let b = Sql::consumption_requests(&mut *conn, second).await?;
            Ok((a, b))
        })
    }

    /// Open requests the consumption job may act on at `now`.
    pub async fn consumption_due(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<ConsumptionRequestEntry>, StoreError> {
        on_read!(self, |conn| Sql::consumption_due(conn, now, limit).await)
    }

    /// Requests past their deadline at `at` without an answer, unsettled.
    pub async fn consumption_missed(
        &self,
        at: i64,
    ) -> Result<Vec<ConsumptionRequestEntry>, StoreError> {
        on_read!(self, |conn| Sql::consumption_missed(conn, at).await)
    }

    /// Subscriptions whose customer asked for a refund since `since` and
    /// whose decision has not reached us.
    pub async fn undecided_refund_requests(&self, since: i64) -> Result<Vec<String>, StoreError> {
        on_read!(self, |conn| Sql::undecided_refund_requests(conn, since)
            .await)
    }

    /// Takes an open request for `holder` until `until`; true when it has it.
    pub async fn claim_consumption_request(
        &self,
        notification_uuid: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        on_write!(self, |tx| {
            Sql::claim_consumption_request(tx, notification_uuid, holder, now, until).await
        })
    }

    /// Keeps what the job did about a request it claimed, and gives the
    /// claim back; false when the claim had passed to another instance.
    pub async fn record_consumption_progress(
        &self,
        notification_uuid: &str,
        holder: &str,
        progress: &ConsumptionProgress,
    ) -> Result<bool, StoreError> {
        on_write!(self, |tx| {
            Sql::record_consumption_progress(tx, notification_uuid, holder, progress).await
        })
    }

    /// Asks for an open request's answer to go at the job's next run.
    pub async fn send_consumption_now(
        &self,
        notification_uuid: &str,
        by: &str,
    ) -> Result<bool, StoreError> {
        on_write!(self, |tx| Sql::send_consumption_now(
            tx,
            notification_uuid,
            by
        )
        .await)
    }

    /// Keeps a customer's consent to share consumption data; the latest wins.
    pub async fn set_consumption_consent(
        &self,
        app_account_token: &str,
        consumption_data: bool,
        recorded_at: i64,
    ) -> Result<(), StoreError> {
        on_write!(self, |tx| {
            Sql::set_consumption_consent(tx, app_account_token, consumption_data, recorded_at).await
        })
    }

    /// Keeps what was said of a transaction for its consumption answer.
    pub async fn set_consumption_facts(
        &self,
        facts: &NewConsumptionFacts,
    ) -> Result<(), StoreError> {
        on_write!(self, |tx| Sql::set_consumption_facts(tx, facts).await)
    }
}

/// The request a CONSUMPTION_REQUEST opens: Apple's 12 hours run from when
/// it asked (its signedDate; our clock when that is later, or missing).
pub(super) fn consumption_request(
    n: &NewNotification,
) -> Option<super::outbox::NewConsumptionRequest<'_>> {
    if n.notification_type != crate::model::NotificationType::ConsumptionRequest {
        return None;
    }
    let data = n.event.data.as_ref()?;
    let transaction = data.signed_transaction_info.as_ref()?;
    let requested_at = n.signed_date.unwrap_or(n.received_at).min(n.received_at);
    Some(super::outbox::NewConsumptionRequest {
        notification_uuid: &n.notification_uuid,
        transaction,
        transaction_id: transaction.transaction_id.as_deref()?,
        bundle_id: n.bundle_id.as_deref(),
        environment: n
            .environment
            .as_ref()
            .map(crate::model::Environment::as_str),
        reason: data.consumption_request_reason.as_deref(),
        requested_at,
        received_at: n.received_at,
        deadline: requested_at.saturating_add(crate::consumption::ANSWER_WINDOW_MS),
    })
}
