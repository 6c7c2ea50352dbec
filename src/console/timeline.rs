//! A customer's story as the console tells it: every stored event of an
//! item (notifications and Apple's answers) in the ledger's order, each
//! with the state the ledger had after it. Pure: the payloads in, the steps
//! out.

use crate::ledger::{apply, in_order, sources, Event, ItemKey, State, Status};

/// What the ledger said after one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub status: Status,
    /// Entitled at the event's own moment (its signedDate), by what was
    /// known once it was applied.
    pub entitled: bool,
    pub expires_date: Option<i64>,
    /// Set while the current period is refunded or revoked.
    pub revocation_date: Option<i64>,
}

/// One event and the state after it.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: Event,
    pub after: After,
}

/// The item's events in the ledger's order with the state after each, and
/// the state after all of them. Payloads that do not read as events are
/// left out (the checker reports them). Only the few fields shown are kept
/// per step: a thousand copies of a state with its timeline would not be.
pub fn steps<P: AsRef<str>>(item: &ItemKey, payloads: &[P]) -> (Vec<Step>, Option<State>) {
    let events: Vec<Event> = payloads
        .iter()
        .filter_map(|payload| Event::parse(payload.as_ref()).ok())
        .filter(|event| event.item().as_ref() == Some(item))
        .collect();
    let mut state: Option<State> = None;
    let mut steps = Vec::with_capacity(events.len());
    for event in in_order(events) {
        let (next, _) = apply(state.take(), item, &event);
        let moment = event.effective_signed_date();
        steps.push(Step {
            after: After {
                status: next.status,
                entitled: next.entitled_at(item, moment),
                expires_date: next.expires_date(),
                revocation_date: next.current_revocation_date(),
            },
            event,
        });
        state = Some(next);
    }
    (steps, state)
}

/// How a step is marked on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Refund,
    Reversal,
    Expiration,
    BillingProblem,
    AppleAnswer,
    Plain,
}

impl Mark {
    pub fn of(event: &Event) -> Mark {
        match event.notification_type.as_str() {
            "REFUND" | "REVOKE" => Mark::Refund,
            "REFUND_REVERSED" => Mark::Reversal,
            "EXPIRED" | "GRACE_PERIOD_EXPIRED" => Mark::Expiration,
            "DID_FAIL_TO_RENEW" => Mark::BillingProblem,
            sources::SUBSCRIPTION_STATUS
            | sources::TRANSACTION_HISTORY
            | sources::TRANSACTION_INFO
            | sources::APP_REPORTED => Mark::AppleAnswer,
            _ => Mark::Plain,
        }
    }

    /// The CSS class of its row.
    pub fn class(self) -> &'static str {
        match self {
            Mark::Refund => "refund",
            Mark::Reversal => "reversal",
            Mark::Expiration => "expiration",
            Mark::BillingProblem => "billing",
            Mark::AppleAnswer => "apple",
            Mark::Plain => "",
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // a test's overflow fails it, as it should
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn payload(kind: &str, uuid: &str, signed: i64, period: i64, revoked: bool) -> String {
        let mut transaction = serde_json::json!({
            "transactionId": format!("t{period}"), "originalTransactionId": "o1",
            "productId": "monthly", "type": "Auto-Renewable Subscription",
            "purchaseDate": period * 30 * DAY, "originalPurchaseDate": 0,
            "expiresDate": (period + 1) * 30 * DAY, "signedDate": signed,
            "price": 9990, "currency": "USD",
        });
        if revoked {
            transaction["revocationDate"] = serde_json::json!(signed);
            transaction["revocationReason"] = serde_json::json!(0);
        }
        serde_json::json!({
            "notificationType": kind, "notificationUUID": uuid, "signedDate": signed,
            "data": {"bundleId": "b", "environment": "Sandbox", "signedTransactionInfo": transaction},
        })
        .to_string()
    }

    #[test]
    fn steps_are_in_the_ledgers_order_with_the_state_after_each() {
        let item = ItemKey::Subscription("o1".into());
        // Delivered out of order, one twice, one of another item, one unreadable.
        let payloads = vec![
            payload("REFUND", "u3", 40 * DAY, 1, true),
            payload("SUBSCRIBED", "u1", 0, 0, false),
            payload("DID_RENEW", "u2", 30 * DAY, 1, false),
            payload("SUBSCRIBED", "u1", 0, 0, false),
            payload("SUBSCRIBED", "other", 0, 0, false).replace("\"o1\"", "\"o2\""),
            "not json".to_owned(),
        ];
        let (steps, state) = steps(&item, &payloads);
        let kinds: Vec<&str> = steps
            .iter()
            .map(|s| s.event.notification_type.as_str())
            .collect();
        assert_eq!(kinds, ["SUBSCRIBED", "DID_RENEW", "REFUND"]);
        assert!(steps[0].after.entitled && steps[1].after.entitled);
        assert_eq!(steps[1].after.expires_date, Some(60 * DAY));
        assert!(!steps[2].after.entitled, "refunded: {:?}", steps[2].after);
        assert_eq!(steps[2].after.revocation_date, Some(40 * DAY));
        assert_eq!(Mark::of(&steps[2].event), Mark::Refund);
        assert_eq!(Mark::of(&steps[0].event), Mark::Plain);
        assert_eq!(state.map(|s| s.status), Some(steps[2].after.status));
        assert!(super::steps::<&str>(&item, &[]).1.is_none());
    }
}
