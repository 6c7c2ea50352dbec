//! What consumers are told about an item, and the entitlement events a
//! change of it makes. Pure, the moment passed in: the store compares the
//! answer it last told with the answer after each fold, in the fold's
//! transaction, and keeps the events in its outbox.

use serde::{Deserialize, Serialize};

use super::{Effect, ItemKey, Products, State, Status};

/// The answer about an item that consumers were last told: every event
/// carries it as it stands after the change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Told {
    pub entitled: bool,
    /// ACTIVE, BILLING_GRACE_PERIOD, BILLING_RETRY, EXPIRED, REVOKED.
    pub status: Option<String>,
    pub product_id: Option<String>,
    pub expires_date: Option<i64>,
    /// 1 on, 0 off (subscriptions).
    pub auto_renew_status: Option<i64>,
    pub original_transaction_id: Option<String>,
    pub transaction_id: Option<String>,
    pub app_account_token: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    /// Transactions refunded (from their notification or Apple's answer),
    /// sorted; none for a Family Sharing member's item, which refunds
    /// nothing to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunded: Vec<String>,
    /// Refunds Apple reversed (REFUND_REVERSED), counted.
    #[serde(default)]
    pub refunds_reversed: i64,
    /// When the customer's parent or guardian withdrew consent
    /// (RESCIND_CONSENT about the app transaction of this item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_rescinded_date: Option<i64>,
}

impl Told {
    /// The answer about `item` at `at`. `reversed` counts the refunds Apple
    /// reversed: the fold's own count when it folded every event of the item
    /// (`told` none), else the count told before plus this fold's.
    pub fn of(state: &State, item: &ItemKey, at: i64, products: &Products, reversed: i64) -> Told {
        let answer = state.answer_at(item, at, products);
        let family = state.in_app_ownership_type.as_deref() == Some("FAMILY_SHARED");
        let mut refunded: Vec<String> = if family {
            Vec::new()
        } else {
            state
                .refund_notices
                .iter()
                .chain(&state.api_refunds)
                .cloned()
                .collect()
        };
        refunded.sort();
        refunded.dedup();
        Told {
            entitled: answer.entitled,
            status: answer.status.map(|s| s.as_str().to_owned()),
            product_id: answer.product_id.map(str::to_owned),
            expires_date: answer.expires_date,
            auto_renew_status: match item {
                ItemKey::Subscription(_) => state.auto_renew_status.map(|s| s.raw()),
                ItemKey::Purchase(_) => None,
            },
            original_transaction_id: state
                .original_transaction_id
                .clone()
                .or_else(|| Some(item.id().to_owned())),
            transaction_id: match item {
                ItemKey::Purchase(id) => Some(id.clone()),
                ItemKey::Subscription(_) => state.current_transaction_id.clone(),
            },
            app_account_token: state.app_account_token.clone(),
            bundle_id: state.bundle_id.clone(),
            environment: state.environment.clone(),
            refunded,
            refunds_reversed: reversed,
            consent_rescinded_date: None,
        }
    }
}

/// The moments at which the answer about an item may change with nothing
/// new learned (a period's start or end, a revocation's, a status Apple
/// gave, a grace period's end, a non-renewing subscription's end), sorted:
/// between two of them it stands still.
pub fn moments(state: &State, item: &ItemKey, products: &Products) -> Vec<i64> {
    let timeline = &state.timeline;
    let mut moments: Vec<i64> = timeline
        .periods
        .iter()
        .flat_map(|p| {
            std::iter::once(p.purchase_date)
                .chain(p.expires_date)
                .chain(
                    p.revocations
                        .iter()
                        .flat_map(|r| std::iter::once(r.from).chain(r.until)),
                )
        })
        .chain(timeline.statuses.iter().flat_map(|s| {
            std::iter::once(s.from)
                .chain(s.grace.into_iter().flat_map(|(from, until)| [from, until]))
        }))
        .chain(state.renewal_date)
        .chain(state.grace_period_expires_date)
        .chain(state.transaction_expires_date)
        .chain(state.revocation_date)
        .chain(
            state
                .non_renewing_end(item, products)
                .and_then(|(_, end)| end),
        )
        .collect();
    moments.sort_unstable();
    moments.dedup();
    moments
}

/// The next moment after `at` at which the answer told may change by time
/// alone (when the clock job tells it again); none when nothing is ahead.
pub fn changes_at(state: &State, item: &ItemKey, at: i64, products: &Products) -> Option<i64> {
    moments(state, item, products)
        .into_iter()
        .find(|moment| *moment > at)
}

/// What a late or corrected fact changed of the answers already given: from
/// the first moment whose access (entitled, product) differs to the end of
/// the last such stretch, before `until` (the last moment told), with the
/// answer given then and the answer now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub from: i64,
    pub to: i64,
    pub before: Told,
    pub after: Told,
}

/// The correction `after` makes to `before` over moments before `until`.
pub fn correction(
    before: &State,
    after: &State,
    item: &ItemKey,
    until: i64,
    products: &Products,
) -> Option<Correction> {
    let mut candidates = moments(before, item, products);
    candidates.extend(moments(after, item, products));
    candidates.sort_unstable();
    candidates.dedup();
    let access = |state: &State, at: i64| {
        let answer = state.answer_at(item, at, products);
        (answer.entitled, answer.product_id.map(str::to_owned))
    };
    let mut stretch: Option<(i64, i64)> = None;
    let past: Vec<i64> = candidates.into_iter().filter(|m| *m < until).collect();
    for (i, moment) in past.iter().enumerate() {
        if access(before, *moment) != access(after, *moment) {
            let end = past.get(i.saturating_add(1)).copied().unwrap_or(until);
            stretch = Some(stretch.map_or((*moment, end), |(from, _)| (from, end)));
        }
    }
    let (from, to) = stretch?;
    Some(Correction {
        from,
        to,
        before: Told::of(before, item, from, products, 0),
        after: Told::of(after, item, from, products, 0),
    })
}

/// Refund reversals among `effects`.
pub fn reversals(effects: &[Effect]) -> i64 {
    let count = effects
        .iter()
        .filter(|e| matches!(e, Effect::RefundReversed { .. }))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// One event: its kind, and the transaction it is about when it is a
/// refund's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: &'static str,
    pub transaction_id: Option<String>,
}

/// The kinds of entitlement event, with their stable names.
pub mod kinds {
    pub const ENTITLEMENT_GRANTED: &str = "ENTITLEMENT_GRANTED";
    pub const ENTITLEMENT_REVOKED: &str = "ENTITLEMENT_REVOKED";
    pub const PRODUCT_CHANGED: &str = "PRODUCT_CHANGED";
    pub const EXPIRES_DATE_CHANGED: &str = "EXPIRES_DATE_CHANGED";
    pub const AUTO_RENEW_CHANGED: &str = "AUTO_RENEW_CHANGED";
    pub const BILLING_PROBLEM: &str = "BILLING_PROBLEM";
    pub const GRACE_PERIOD_STARTED: &str = "GRACE_PERIOD_STARTED";
    pub const REFUNDED: &str = "REFUNDED";
    pub const REFUND_REVERSED: &str = "REFUND_REVERSED";
    pub const CONSENT_RESCINDED: &str = "CONSENT_RESCINDED";
    pub const ANSWER_CORRECTED: &str = "ANSWER_CORRECTED";

    /// Every kind, as `GET /v1/events?types=` takes them.
    pub const ALL: [&str; 11] = [
        ENTITLEMENT_GRANTED,
        ENTITLEMENT_REVOKED,
        PRODUCT_CHANGED,
        EXPIRES_DATE_CHANGED,
        AUTO_RENEW_CHANGED,
        BILLING_PROBLEM,
        GRACE_PERIOD_STARTED,
        REFUNDED,
        REFUND_REVERSED,
        CONSENT_RESCINDED,
        ANSWER_CORRECTED,
    ];
}

/// The events that telling `after` instead of `before` (nothing told yet:
/// `None`) makes, in a fixed order.
pub fn changes(before: Option<&Told>, after: &Told) -> Vec<Change> {
    let mut events = Vec::new();
    let mut push = |kind, transaction_id: Option<&String>| {
        events.push(Change {
            kind,
            transaction_id: transaction_id.cloned(),
        })
    };
    let was = before.cloned().unwrap_or_default();
    let status = |t: &Told, s: Status| t.status.as_deref() == Some(s.as_str());
    for refunded in after
        .refunded
        .iter()
        .filter(|id| !was.refunded.contains(id))
    {
        push(kinds::REFUNDED, Some(refunded));
    }
    for _ in was.refunds_reversed..after.refunds_reversed {
        push(kinds::REFUND_REVERSED, None);
    }
    match (was.entitled, after.entitled) {
        (false, true) => push(kinds::ENTITLEMENT_GRANTED, None),
        (true, false) => push(kinds::ENTITLEMENT_REVOKED, None),
        _ => {}
    }
    // Told before, and entitled on both sides: what changed of the access.
    if before.is_some() && was.entitled && after.entitled {
        if was.product_id != after.product_id {
            push(kinds::PRODUCT_CHANGED, None);
        }
        if was.expires_date != after.expires_date {
            push(kinds::EXPIRES_DATE_CHANGED, None);
        }
    }
    if before.is_some() && was.auto_renew_status != after.auto_renew_status {
        push(kinds::AUTO_RENEW_CHANGED, None);
    }
    if status(after, Status::BillingRetry) && !status(&was, Status::BillingRetry) {
        push(kinds::BILLING_PROBLEM, None);
    }
    if status(after, Status::BillingGracePeriod) && !status(&was, Status::BillingGracePeriod) {
        push(kinds::GRACE_PERIOD_STARTED, None);
    }
    if after.consent_rescinded_date.is_some() && was.consent_rescinded_date.is_none() {
        push(kinds::CONSENT_RESCINDED, None);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_of(before: Option<&Told>, after: &Told) -> Vec<&'static str> {
        changes(before, after).into_iter().map(|c| c.kind).collect()
    }

    fn told(entitled: bool, status: &str, product: &str, expires: i64) -> Told {
        Told {
            entitled,
            status: Some(status.into()),
            product_id: Some(product.into()),
            expires_date: Some(expires),
            auto_renew_status: Some(1),
            ..Told::default()
        }
    }

    #[test]
    fn the_first_answer_grants_or_says_nothing() {
        let active = told(true, "ACTIVE", "monthly", 10);
        assert_eq!(kinds_of(None, &active), [kinds::ENTITLEMENT_GRANTED]);
        let expired = told(false, "EXPIRED", "monthly", 10);
        assert!(kinds_of(None, &expired).is_empty());
    }

    #[test]
    fn a_renewal_moves_the_end_and_an_upgrade_the_product() {
        let before = told(true, "ACTIVE", "monthly", 10);
        assert_eq!(
            kinds_of(Some(&before), &told(true, "ACTIVE", "monthly", 20)),
            [kinds::EXPIRES_DATE_CHANGED]
        );
        assert_eq!(
            kinds_of(Some(&before), &told(true, "ACTIVE", "annual", 10)),
            [kinds::PRODUCT_CHANGED]
        );
        assert!(kinds_of(Some(&before), &before).is_empty());
    }

    #[test]
    fn billing_trouble_and_its_end() {
        let active = told(true, "ACTIVE", "monthly", 10);
        let grace = told(true, "BILLING_GRACE_PERIOD", "monthly", 10);
        let retry = told(false, "BILLING_RETRY", "monthly", 10);
        assert_eq!(
            kinds_of(Some(&active), &grace),
            [kinds::GRACE_PERIOD_STARTED]
        );
        assert_eq!(
            kinds_of(Some(&grace), &retry),
            [kinds::ENTITLEMENT_REVOKED, kinds::BILLING_PROBLEM]
        );
        assert_eq!(
            kinds_of(Some(&retry), &told(true, "ACTIVE", "monthly", 40)),
            [kinds::ENTITLEMENT_GRANTED]
        );
        let refunded = Told {
            refunded: vec!["t1".into()],
            ..told(false, "REVOKED", "monthly", 10)
        };
        assert_eq!(
            changes(Some(&active), &refunded),
            [
                Change {
                    kind: kinds::REFUNDED,
                    transaction_id: Some("t1".into())
                },
                Change {
                    kind: kinds::ENTITLEMENT_REVOKED,
                    transaction_id: None
                },
            ]
        );
        let reversed = Told {
            refunds_reversed: 1,
            ..Told {
                refunded: vec!["t1".into()],
                ..active.clone()
            }
        };
        assert_eq!(
            kinds_of(Some(&refunded), &reversed),
            [kinds::REFUND_REVERSED, kinds::ENTITLEMENT_GRANTED]
        );
        let off = Told {
            auto_renew_status: Some(0),
            ..active.clone()
        };
        assert_eq!(kinds_of(Some(&active), &off), [kinds::AUTO_RENEW_CHANGED]);
    }
}
