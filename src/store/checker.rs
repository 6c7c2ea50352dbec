//! The checker's and the jobs' part of the store: the ledger scan, what
//! the checker finds and keeps, the job leases, and `copy-store`.

use super::*;
use crate::finding::Finding;

impl Store {
    /// Up to `limit` rows of a copied table after `after`, in key order
    /// (see [`copy`]).
    pub async fn copy_page(
        &self,
        table: &copy::CopyTable,
        after: Option<&copy::CopyKey>,
        limit: i64,
    ) -> Result<Vec<copy::CopyRow>, StoreError> {
        on_read!(self, |conn| Sql::copy_page(conn, table, after, limit).await)
    }

    /// Inserts copied rows, with their keys, in one transaction (beside the
    /// webhook's writer); a row already there stays as it is. Returns how
    /// many were new.
    pub async fn copy_rows(
        &self,
        table: &copy::CopyTable,
        rows: &[copy::CopyRow],
    ) -> Result<u64, StoreError> {
        on_write!(self, |tx| Sql::copy_rows(tx, table, rows).await)
    }

    /// The largest key of a copied table: where a copy continues.
    pub async fn last_copied(
        &self,
        table: &copy::CopyTable,
    ) -> Result<Option<copy::CopyKey>, StoreError> {
        on_read!(self, |conn| Sql::last_copied(conn, table).await)
    }

    /// How many rows a copied table holds (counted).
    pub async fn table_rows(&self, table: &copy::CopyTable) -> Result<u64, StoreError> {
        let rows = on_read!(self, |conn| Sql::table_rows(conn, table).await)?;
        Ok(u64::try_from(rows).unwrap_or(0))
    }

    /// After a table was copied in: generated keys continue after its ids.
    pub async fn finish_copy(&self, table: &copy::CopyTable) -> Result<(), StoreError> {
        on_write!(self, |tx| tx.finish_copy(table).await)
    }

    /// Ledger items in (kind, item_id) order, after the given one.
    pub async fn scan_ledger(
        &self,
        after: Option<&(String, String)>,
        limit: i64,
    ) -> Result<Vec<LedgerItem>, StoreError> {
        on_read!(self, |conn| Sql::scan(conn, after, limit).await)
    }

    /// Notifications that arrived again with different content.
    pub async fn conflicts(&self) -> Result<Vec<Conflict>, StoreError> {
        on_read!(self, |conn| Sql::conflicts(conn).await)
    }

    /// Stored notifications whose shape was new to the version that stored
    /// them (a type, a subtype, a container), with their payloads.
    pub async fn unknown_shapes(&self) -> Result<Vec<UnknownShape>, StoreError> {
        on_read!(self, |conn| Sql::unknown_shapes(conn).await)
    }

    /// Stored notifications that could not be folded into the ledger.
    pub async fn unfolded(&self) -> Result<Vec<UnfoldedNotification>, StoreError> {
        on_read!(self, |conn| Sql::unfolded(conn).await)
    }

    /// The (kind code, subject) of every open finding, or of those about
    /// `subject`.
    pub async fn open_finding_keys(
        &self,
        subject: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        on_read!(self, |conn| Sql::open_finding_keys(conn, subject).await)
    }

    /// Marks these open findings resolved at `now`, in one transaction;
    /// returns how many were. Callers pass small batches, so that the write
    /// lock is never held long.
    pub async fn resolve_findings(
        &self,
        keys: &[(String, String)],
        now: i64,
        resolution: Option<&str>,
    ) -> Result<u64, StoreError> {
        on_write!(self, |tx| {
            Sql::resolve_findings(tx, keys, now, resolution).await
        })
    }

    /// Says how findings about `subject` resolved since `since` (and not yet
    /// attributed) were settled: a periodic check may have resolved them
    /// between Apple's answer being folded and the reconciler's own resolve.
    pub async fn attribute_resolution(
        &self,
        subject: &str,
        since: i64,
        resolution: &str,
    ) -> Result<u64, StoreError> {
        on_write!(self, |tx| {
            Sql::attribute_resolution(tx, subject, since, resolution).await
        })
    }

    /// Sees these findings again at `now`, opening the new ones, in one
    /// transaction; returns how many were opened.
    pub async fn upsert_findings(&self, records: &[Finding], now: i64) -> Result<u64, StoreError> {
        on_write!(self, |tx| Sql::upsert_findings(tx, records, now).await)
    }

    pub async fn findings(&self, filter: &FindingFilter) -> Result<Vec<FindingEntry>, StoreError> {
        on_read!(self, |conn| Sql::findings(conn, filter).await)
    }

    /// Takes `job`'s lease until `expires_at` if it is free, lapsed at `now`
    /// or already `holder`'s; true when `holder` has it. See the job lease
    /// (`lease.rs`), above the store.
    pub async fn hold_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        on_write!(self, |tx| {
            Sql::hold_lease(tx, job, holder, now, expires_at).await
        })
    }

    /// Gives `job`'s lease back, if `holder` has it.
    pub async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError> {
        on_write!(self, |tx| Sql::release_lease(tx, job, holder).await)
    }
}
