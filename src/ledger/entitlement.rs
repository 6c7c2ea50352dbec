//! Entitlement at any moment: answered from an item's timeline by
//! everything known now. A refund dated before T ends access at its
//! `revocationDate` even when Apple reported it later, until a reversal;
//! grace counts until `gracePeriodExpiresDate`; billing retry and expiry are
//! not entitled; the product at T is the one whose period covers T.

use super::duration::Products;
use super::event::ItemKey;
use super::state::{State, Status};
use super::timeline::Offer;
use crate::model::ProductType;

/// The answer about one item at a moment, as the query API gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    pub entitled: bool,
    pub status: Option<Status>,
    pub product_id: Option<&'a str>,
    /// When the access that covers the moment ends; for a non-renewing
    /// subscription, its purchase plus the configured duration.
    pub expires_date: Option<i64>,
    pub seats: Option<i64>,
    /// For a non-renewing subscription: whether its product's duration is
    /// configured (without it, it is entitled with no end).
    pub duration_configured: Option<bool>,
    /// The offer the transaction covering the moment redeemed.
    pub offer: Option<&'a Offer>,
}

impl State {
    /// Everything the query API answers about `item` at `at`, non-renewing
    /// subscriptions ending as `products` says.
    pub fn answer_at<'a>(&'a self, item: &ItemKey, at: i64, products: &Products) -> Answer<'a> {
        let mut answer = Answer {
            entitled: self.entitled_at(item, at),
            status: self.status_at(item, at),
            product_id: self.product_at(item, at),
            expires_date: self.expires_at(item, at),
            seats: self.seats_at(item, at),
            duration_configured: None,
            offer: self.offer_at(item, at),
        };
        if let Some((configured, end)) = self.non_renewing_end(item, products) {
            answer.duration_configured = Some(configured);
            if let Some(end) = end {
                answer.expires_date = Some(end);
                if at >= end && answer.status == Some(Status::Active) {
                    answer.entitled = false;
                    answer.status = Some(Status::Expired);
                }
            }
        }
        answer
    }

    /// For a non-renewing subscription: whether its product's duration is
    /// configured, and when it ends (None: not configured, or a purchase
    /// date outside the calendar). None for anything else.
    pub fn non_renewing_end(
        &self,
        item: &ItemKey,
        products: &Products,
    ) -> Option<(bool, Option<i64>)> {
        let ItemKey::Purchase(_) = item else {
            return None;
        };
        if self.product_type != Some(ProductType::NonRenewingSubscription) {
            return None;
        }
        let duration = products.duration(
            self.bundle_id.as_deref().unwrap_or_default(),
            self.product_id.as_deref().unwrap_or_default(),
        );
        Some((
            duration.is_some(),
            duration.and_then(|d| self.purchase_date.and_then(|p| d.end_from(p))),
        ))
    }
}

impl State {
    /// Is the customer entitled at `at` (milliseconds)? Answered from the
    /// timeline by everything known now: the period that covers `at`, its
    /// revocations (even those reported later, until a reversal), and the
    /// status Apple gave at `at`.
    pub fn entitled_at(&self, item: &ItemKey, at: i64) -> bool {
        if self.timeline.is_empty() {
            return self.entitled_at_without_timeline(item, at);
        }
        match item {
            ItemKey::Purchase(_) => {
                // A consumable is used up, not an entitlement.
                self.product_type != Some(ProductType::Consumable)
                    && self.timeline.covering(at, None).is_some()
                    && !self.timeline.revoked_at(at, None)
            }
            ItemKey::Subscription(_) => self.status_at(item, at).is_some_and(Status::entitles),
        }
    }

    /// The status at `at`, from the timeline: REVOKED while the period then
    /// is revoked, else Apple's status then; a time no period and no grace
    /// covers is EXPIRED. None before the first purchase.
    pub fn status_at(&self, item: &ItemKey, at: i64) -> Option<Status> {
        if self.timeline.is_empty() {
            return Some(self.status);
        }
        if self
            .timeline
            .first_purchase()
            .is_none_or(|first| at < first)
        {
            return None;
        }
        let renewal_date = self.renewal_date_if_subscription(item);
        let covering = self.timeline.covering(at, renewal_date);
        if self.timeline.revoked_at(at, renewal_date) {
            return Some(Status::Revoked);
        }
        if let ItemKey::Purchase(_) = item {
            return Some(Status::Active);
        }
        let span = self.timeline.status_span_at(at);
        match span.map(|s| s.status) {
            Some(ended @ (Status::BillingRetry | Status::Expired | Status::Revoked)) => Some(ended),
            _ if covering.is_some() => Some(Status::Active),
            _ => {
                let in_grace = self.timeline.statuses.iter().any(|s| {
                    s.grace
                        .is_some_and(|(from, until)| from <= at && at < until)
                });
                Some(if in_grace {
                    Status::BillingGracePeriod
                } else {
                    Status::Expired
                })
            }
        }
    }

    /// When the period covering `at` ends (for the latest, as renewal info
    /// says); the latest period's end when none covers it.
    pub fn expires_at(&self, item: &ItemKey, at: i64) -> Option<i64> {
        if let ItemKey::Purchase(_) = item {
            return None;
        }
        self.timeline
            .covering_until(at, self.renewal_date)
            .and_then(|(_, end)| end)
            .or_else(|| self.expires_date())
    }

    /// Seats of the period covering `at` (multiseat purchases): the
    /// `quantity` of its transactions less the seats refunds revoked.
    pub fn seats_at(&self, item: &ItemKey, at: i64) -> Option<i64> {
        self.timeline
            .seats_at(at, self.renewal_date_if_subscription(item))
    }

    /// The product whose period covers `at`; between periods, the one of
    /// the last period begun by then.
    pub fn product_at(&self, item: &ItemKey, at: i64) -> Option<&str> {
        if self.timeline.is_empty() {
            return self.product_id.as_deref();
        }
        self.timeline
            .covering(at, self.renewal_date_if_subscription(item))
            .or_else(|| {
                self.timeline
                    .periods
                    .iter()
                    .rev()
                    .find(|p| p.purchase_date <= at)
            })
            .and_then(|p| p.product_id.as_deref())
    }

    /// The offer redeemed by the transaction whose period covers `at`.
    pub fn offer_at(&self, item: &ItemKey, at: i64) -> Option<&Offer> {
        self.timeline
            .covering(at, self.renewal_date_if_subscription(item))
            .and_then(|p| p.offer.as_ref())
    }

    fn renewal_date_if_subscription(&self, item: &ItemKey) -> Option<i64> {
        match item {
            ItemKey::Subscription(_) => self.renewal_date,
            ItemKey::Purchase(_) => None,
        }
    }

    /// States folded before the timeline existed (until `rebuild`): the
    /// current state, with the refund cut-off applied to the past.
    fn entitled_at_without_timeline(&self, item: &ItemKey, at: i64) -> bool {
        if self
            .current_revocation_date()
            .is_some_and(|revoked| at >= revoked)
        {
            return false;
        }
        match item {
            ItemKey::Purchase(_) => {
                // A consumable is used up, not an entitlement.
                self.product_type != Some(ProductType::Consumable)
                    && self.purchase_date.is_none_or(|p| at >= p)
            }
            ItemKey::Subscription(_) => {
                if self
                    .original_purchase_date
                    .or(self.purchase_date)
                    .is_some_and(|p| at < p)
                {
                    return false;
                }
                let ended = matches!(
                    self.status,
                    Status::BillingRetry | Status::Expired | Status::Revoked
                );
                if ended && at >= self.status_since {
                    return false;
                }
                if self.expires_date().is_some_and(|end| at < end) {
                    return true;
                }
                self.status == Status::BillingGracePeriod
                    && self
                        .grace_period_expires_date
                        .is_some_and(|grace| at < grace)
            }
        }
    }
}
