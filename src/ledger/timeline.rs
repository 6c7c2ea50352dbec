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
    /// Seats this transaction covers (Apple's `quantity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    /// Seats of it a seat-based refund revoked; the transaction stays valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_seat_quantity: Option<i64>,
    /// Apple's `additionalTransactionReason`: this transaction shares its
    /// period with the others that end when it does (seats added
    /// mid-period), rather than replacing the one before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_transaction_reason: Option<String>,
    /// The offer this transaction redeemed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
}

/// An offer a transaction redeemed, in Apple's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// 1 introductory, 2 promotional, 3 offer code, 4 win-back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_identifier: Option<String>,
    /// ISO 8601 duration (`P1M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_period: Option<String>,
    /// `FREE_TRIAL`, `PAY_AS_YOU_GO`, `PAY_UP_FRONT`, `ONE_TIME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_discount_type: Option<String>,
}

impl Offer {
    /// The offer a transaction names; None when it names none.
    pub fn of(t: &TransactionFacts) -> Option<Offer> {
        let offer = Offer {
            offer_type: t.offer_type,
            offer_identifier: t.offer_identifier.clone(),
            offer_period: t.offer_period.clone(),
            offer_discount_type: t.offer_discount_type.clone(),
        };
        (offer.offer_type.is_some()
            || offer.offer_identifier.is_some()
            || offer.offer_discount_type.is_some())
        .then_some(offer)
    }
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
                        quantity: None,
                        revoked_seat_quantity: None,
                        additional_transaction_reason: None,
                        offer: None,
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
        period.quantity = t.quantity.or(period.quantity);
        // Each signed copy says how many seats are revoked now: absent, none.
        period.revoked_seat_quantity = t.revoked_seat_quantity();
        period.additional_transaction_reason = t
            .additional_transaction_reason
            .clone()
            .or(period.additional_transaction_reason.take());
        period.offer = Offer::of(t).or(period.offer.take());
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
    /// replaces at the new purchase; seats added mid-period share it; the
    /// latest period lasts until `renewal_date` when renewal info says it
    /// runs longer.
    pub fn covering(&self, at: i64, renewal_date: Option<i64>) -> Option<&Period> {
        self.covering_until(at, renewal_date).map(|(p, _)| p)
    }

    /// The period covering `at`, with when its time ends (None: never).
    pub fn covering_until(
        &self,
        at: i64,
        renewal_date: Option<i64>,
    ) -> Option<(&Period, Option<i64>)> {
        self.covering_index(at, renewal_date)
            .and_then(|(i, end)| self.periods.get(i).map(|p| (p, end)))
    }

    fn covering_index(&self, at: i64, renewal_date: Option<i64>) -> Option<(usize, Option<i64>)> {
        self.periods
            .iter()
            .enumerate()
            .rev()
            .map(|(i, p)| (i, p, self.end_of(i, p, renewal_date)))
            .find(|(_, p, end)| p.purchase_date <= at && end.is_none_or(|end| at < end))
            .map(|(i, _, end)| (i, end))
    }

    /// When the time of the period at `i` ends: its expiry (for the latest
    /// period, as renewal info says), or the purchase of the next period
    /// that replaces it (an upgrade), whichever comes first. A transaction
    /// that shares the period (added seats) replaces nothing.
    fn end_of(&self, i: usize, p: &Period, renewal_date: Option<i64>) -> Option<i64> {
        let expires = p.expires_date?;
        let mut later = self
            .periods
            .iter()
            .skip(i.saturating_add(1))
            .filter(|next| !shares_period(p, next));
        let mut end = expires;
        match later.next() {
            Some(next) if next.purchase_date < end => end = next.purchase_date,
            Some(_) => {}
            // The latest period: renewal info may vouch for longer.
            None => end = end.max(renewal_date.unwrap_or(end)),
        }
        Some(end)
    }

    /// Is the period covering `at` revoked then? Only when every
    /// transaction of it bought by then is (Apple: revoke access only when
    /// every transaction in the period carries revocation fields); a refund
    /// of added seats, or of some seats, leaves the period.
    pub fn revoked_at(&self, at: i64, renewal_date: Option<i64>) -> bool {
        let mut members = self.members_at(at, renewal_date).peekable();
        members.peek().is_some() && members.all(|member| member.revoked_at(at))
    }

    /// The transactions of the period covering `at` bought by then: the
    /// one covering it, and those that share its period.
    fn members_at(&self, at: i64, renewal_date: Option<i64>) -> impl Iterator<Item = &Period> {
        let covering = self
            .covering_index(at, renewal_date)
            .and_then(|(i, _)| self.periods.get(i));
        self.periods.iter().filter(move |other| {
            covering.is_some_and(|p| {
                other.purchase_date <= at && (std::ptr::eq(*other, p) || shares_period(p, other))
            })
        })
    }

    /// Seats of the period covering `at`: the `quantity` of each of its
    /// transactions bought by then and not wholly revoked, less the seats
    /// a refund revoked. None when Apple gave no quantity.
    pub fn seats_at(&self, at: i64, renewal_date: Option<i64>) -> Option<i64> {
        let members: Vec<&Period> = self.members_at(at, renewal_date).collect();
        if members.iter().all(|m| m.quantity.is_none()) {
            return None;
        }
        Some(
            members
                .iter()
                .filter(|m| !m.revoked_at(at))
                .map(|m| {
                    m.quantity
                        .unwrap_or(1)
                        .saturating_sub(m.revoked_seat_quantity.unwrap_or(0))
                        .max(0)
                })
                .fold(0i64, i64::saturating_add),
        )
    }

    /// Is the period of `transaction_id` revoked now: every transaction of
    /// it carries an open revocation? None when the transaction is unknown.
    pub fn period_of_revoked(&self, transaction_id: &str) -> Option<bool> {
        let p = self
            .periods
            .iter()
            .find(|p| p.transaction_id == transaction_id)?;
        Some(
            self.periods
                .iter()
                .filter(|other| std::ptr::eq(*other, p) || shares_period(p, other))
                .all(|member| member.revocations.iter().any(|r| r.until.is_none())),
        )
    }

    pub fn first_purchase(&self) -> Option<i64> {
        self.periods.iter().map(|p| p.purchase_date).min()
    }
}

/// Two transactions represent one period when Apple marks either with
/// `additionalTransactionReason` and they end at the same moment: seats
/// added mid-period are sold until the period's end.
fn shares_period(a: &Period, b: &Period) -> bool {
    (a.additional_transaction_reason.is_some() || b.additional_transaction_reason.is_some())
        && a.expires_date.is_some()
        && a.expires_date == b.expires_date
}

impl Period {
    /// This transaction revoked at `at`, within its own time: past its
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
