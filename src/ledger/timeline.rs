//! An item's timeline: the periods bought and the statuses Apple gave, each
//! from the notification that established it, so that entitlement at a past
//! moment is answered from what was true then, by everything known now.
//!
//! Kept in the item's state: derived like the rest (order-proof, rebuilt),
//! and a few entries a year per subscription.

use serde::{Deserialize, Serialize};

use super::event::TransactionFacts;
use super::state::Status;

/// A period bought: a subscription's transaction, or a one-time purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    pub transaction_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    pub purchase_date: i64,
    /// None for a one-time purchase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_date: Option<i64>,
    /// The signedDate of the transaction info last applied: an older signed
    /// copy does not undo what a newer one said.
    pub signed_date: i64,
    /// When access to this period was revoked (refund, Family Sharing) and,
    /// if a REFUND_REVERSED re-signed it without revocation, until when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocations: Vec<Revocation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    pub from: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// A status Apple gave from a moment on (the signedDate of the notification
/// that set it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusSpan {
    pub from: i64,
    pub status: Status,
    /// In the billing grace period: entitled from the end of the period that
    /// failed to renew until `gracePeriodExpiresDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<(i64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// By purchase date.
    #[serde(default)]
    pub periods: Vec<Period>,
    /// By `from`.
    #[serde(default)]
    pub statuses: Vec<StatusSpan>,
}

impl Timeline {
    pub fn is_empty(&self) -> bool {
        self.periods.is_empty()
    }

    /// What a signed transaction says of its period. `signed` is the
    /// moment it speaks for (a reversal ends a revocation then).
    pub fn note_transaction(&mut self, t: &TransactionFacts, signed: i64) {
        let (Some(transaction_id), Some(purchase_date)) = (&t.transaction_id, t.purchase_date)
        else {
            return;
        };
        let transaction_signed = t.signed_date.unwrap_or(signed);
        let index = match self
            .periods
            .iter()
            .position(|p| &p.transaction_id == transaction_id)
        {
            Some(index) => index,
            None => {
                let at = self.periods.partition_point(|p| {
                    (p.purchase_date, &p.transaction_id) < (purchase_date, transaction_id)
                });
                self.periods.insert(
                    at,
                    Period {
                        transaction_id: transaction_id.clone(),
                        product_id: None,
                        purchase_date,
                        expires_date: None,
                        signed_date: i64::MIN,
                        revocations: Vec::new(),
                    },
                );
                at
            }
        };
        let Some(period) = self.periods.get_mut(index) else {
            return;
        };
        if transaction_signed < period.signed_date {
            return;
        }
        period.signed_date = transaction_signed;
        period.product_id = t.product_id.clone().or(period.product_id.take());
        period.expires_date = t.expires_date.or(period.expires_date);
        let open = period.revocations.iter_mut().find(|r| r.until.is_none());
        match (t.revocation_date, open) {
            (Some(from), None) => period.revocations.push(Revocation { from, until: None }),
            // Signed again without revocation: the refund was reversed.
            (None, Some(open)) => open.until = Some(signed.max(open.from)),
            _ => {}
        }
    }

    /// A status from `from` on; a repeat of the last one changes nothing.
    pub fn note_status(&mut self, span: StatusSpan) {
        if let Some(last) = self.statuses.last() {
            if last.status == span.status && last.grace == span.grace {
                return;
            }
        }
        let at = self.statuses.partition_point(|s| s.from <= span.from);
        self.statuses.insert(at, span);
    }

    /// The status Apple gave at `at`, if any yet.
    pub fn status_span_at(&self, at: i64) -> Option<&StatusSpan> {
        self.statuses.iter().rev().find(|s| s.from <= at)
    }

    /// The period whose time covers `at`. An upgrade cuts the period it
    /// replaces at the new purchase; the latest period lasts until
    /// `renewal_date` when renewal info says it runs longer.
    pub fn covering(&self, at: i64, renewal_date: Option<i64>) -> Option<&Period> {
        self.covering_until(at, renewal_date).map(|(p, _)| p)
    }

    /// The period covering `at`, with when its time ends (None: never).
    pub fn covering_until(
        &self,
        at: i64,
        renewal_date: Option<i64>,
    ) -> Option<(&Period, Option<i64>)> {
        let last = self.periods.len().checked_sub(1);
        self.periods
            .iter()
            .enumerate()
            .rev()
            .map(|(i, p)| {
                let end = p.expires_date.map(|expires| {
                    let mut end = expires;
                    if Some(i) == last {
                        end = end.max(renewal_date.unwrap_or(end));
                    }
                    match self.periods.get(i.saturating_add(1)) {
                        Some(next) if next.purchase_date < end => next.purchase_date,
                        _ => end,
                    }
                });
                (p, end)
            })
            .find(|(p, end)| p.purchase_date <= at && end.is_none_or(|end| at < end))
    }

    pub fn first_purchase(&self) -> Option<i64> {
        self.periods.iter().map(|p| p.purchase_date).min()
    }
}

impl Period {
    /// Revoked at `at`, within this period's own time: past its
    /// `expiresDate`, time renewal info vouches for belongs to a later
    /// period whose transaction is not known yet, and this refund ends
    /// nothing there.
    pub fn revoked_at(&self, at: i64) -> bool {
        self.expires_date.is_none_or(|end| at < end)
            && self
                .revocations
                .iter()
                .any(|r| r.from <= at && r.until.is_none_or(|until| at < until))
    }
}
