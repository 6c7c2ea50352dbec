//! What the App Store Server API adds on PostgreSQL: Apple's delivery attempts,
//! backfill runs, and the lookups behind reconciliation.

use sqlx::PgConnection;

use super::super::{NewEvidence, StoreError};
use super::read;
use super::retry::{in_transaction, unavailable};
use super::store::PgStore;
use crate::store::fold;

/// The store's side of the App Store Server API and reported purchases.
impl PgStore {
    pub(in crate::store) async fn record_evidence(
        &self,
        evidence: &[NewEvidence],
    ) -> Result<u64, StoreError> {
        in_transaction!(self, tx, {
            let mut stored = 0;
            for e in evidence {
                stored += u64::from(fold::record_evidence(&mut *tx, e).await?);
            }
            Ok(stored)
        })
    }

    pub(in crate::store) async fn note_send_attempts(
        &self,
        notification_uuid: &str,
        send_attempts: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        in_transaction!(self, tx, {
            note_send_attempts(tx, notification_uuid, send_attempts, now).await
        })
    }

    pub(in crate::store) async fn backfill_run(
        &self,
        request: &BackfillRequest,
        now: i64,
    ) -> Result<BackfillRun, StoreError> {
        in_transaction!(self, tx, { backfill_run(tx, request, now).await })
    }

    pub(in crate::store) async fn backfill_progress(
        &self,
        run: &BackfillRun,
        finished_at: Option<i64>,
    ) -> Result<(), StoreError> {
        in_transaction!(self, tx, { backfill_progress(tx, run, finished_at).await })
    }

    pub(in crate::store) async fn known_transaction_ids(
        &self,
        ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        known_transaction_ids(&mut *self.read().await?, ids)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn has_notification(
        &self,
        notification_uuid: &str,
    ) -> Result<bool, StoreError> {
        has_notification(&mut *self.read().await?, notification_uuid)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn item_payloads_known_at(
        &self,
        item: &crate::ledger::ItemKey,
        known_at: i64,
    ) -> Result<Vec<String>, StoreError> {
        read::item_payloads_known_at(&mut *self.read().await?, item, known_at)
            .await
            .map_err(unavailable)
    }
}

crate::store::sql::appstore::appstore!(PgConnection, jsonb = "::jsonb");
