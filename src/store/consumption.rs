//! The refund desk's part of the store: consumption requests, consents and
//! facts (statements in sql/consumption.rs).

use super::*;

impl Store {
    /// Consumption requests, as `filter` says.
    pub async fn consumption_requests(
        &self,
        filter: &ConsumptionFilter,
    ) -> Result<Vec<ConsumptionRequestEntry>, StoreError> {
        on_read!(self, |conn| Sql::consumption_requests(conn, filter).await)
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
