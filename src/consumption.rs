//! Answering Apple's consumption requests (CONSUMPTION_REQUEST): what to
//! send, if anything, decided from the request, the customer's consent, the
//! facts the backend sent and the app's policy. Pure, the time passed in;
//! the job in `sync` sends what this decides and keeps what came of it.

use crate::appstore_api::ConsumptionRequest;
use crate::config::ConsumptionSettings;
use crate::model::{DeliveryStatus, InAppOwnershipType, ProductType, RefundPreference};

/// Apple waits 12 hours for an answer, from its request.
pub const ANSWER_WINDOW_MS: i64 = 12 * 60 * 60 * 1000;
/// The answer goes this long before the deadline at the latest, whatever is
/// still awaited: room for Apple's 429s and 5xx before the chance is gone.
pub const LAST_CALL_MS: i64 = 60 * 60 * 1000;
/// `consumptionPercentage` is in milliunits: 100000 is all of it.
pub const MAX_CONSUMPTION_PERCENTAGE: i64 = 100_000;

/// An app's `[apps.consumption]`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enabled: bool,
    pub answer_after_ms: i64,
    pub delivery_status: DeliveryStatus,
    pub sample_content_provided: bool,
    pub refund_preference: Option<RefundPreference>,
    pub decline_after_used_percent: Option<u8>,
}

impl Policy {
    pub fn from_settings(s: &ConsumptionSettings) -> Policy {
        Policy {
            enabled: s.enabled,
            answer_after_ms: i64::try_from(s.answer_after_minutes)
                .unwrap_or(i64::MAX)
                .saturating_mul(60_000),
            delivery_status: DeliveryStatus::from_raw(&s.delivery_status),
            sample_content_provided: s.sample_content_provided,
            refund_preference: s
                .refund_preference
                .as_deref()
                .map(RefundPreference::from_raw),
            decline_after_used_percent: s.decline_after_used_percent,
        }
    }

    /// The preference the policy gives for `asked`: DECLINE when the rule
    /// says the customer had used most of what they want refunded.
    fn refund_preference(&self, asked: &Asked) -> Option<RefundPreference> {
        match (self.decline_after_used_percent, used_percent(asked)) {
            (Some(threshold), Some(used)) if used >= i64::from(threshold) => {
                Some(RefundPreference::Decline)
            }
            _ => self.refund_preference.clone(),
        }
    }
}

/// A consumption request, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Asked {
    pub product_type: Option<ProductType>,
    pub in_app_ownership_type: Option<InAppOwnershipType>,
    pub app_account_token: Option<String>,
    /// When Apple asked (its signedDate).
    pub requested_at: i64,
    pub deadline: i64,
    /// The period the customer wants refunded, when Apple signed it.
    pub purchase_date: Option<i64>,
    pub expires_date: Option<i64>,
    /// A support agent asked to send the answer now.
    pub send_now: bool,
}

/// The customer's consent to share consumption data, as the backend last
/// recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    pub consumption_data: bool,
    pub recorded_at: i64,
}

/// What the backend (or a support agent) said of the transaction, in
/// Apple's words; what it left out comes from the policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    pub delivery_status: Option<DeliveryStatus>,
    pub consumption_percentage: Option<i64>,
    pub sample_content_provided: Option<bool>,
    pub refund_preference: Option<RefundPreference>,
}

/// What to do about a request now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not yet: what it waits for, and until when at most.
    Wait {
        why: Waiting,
        until: i64,
    },
    Send(ConsumptionRequest),
    /// Never: why not.
    Skip(NotSent),
}

/// What an open request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The backend's facts, until `answer_after_minutes` passed.
    Facts,
    /// The customer's consent, until the last call.
    Consent,
}

impl Waiting {
    pub fn code(self) -> &'static str {
        match self {
            Waiting::Facts => "AWAITING_FACTS",
            Waiting::Consent => "AWAITING_CONSENT",
        }
    }
}

/// Why no answer is sent; each a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// The app has no `[apps.consumption]`, or it is not enabled.
    AnswersOff,
    /// Family Sharing: the family member's use is not the purchaser's data.
    FamilyShared,
    /// Consent is recorded per appAccountToken, and the purchase has none.
    NoAppAccountToken,
    /// No consent recorded by the last call.
    NoConsent,
    /// The customer said no, and had not changed their mind by the last call.
    ConsentDeclined,
}

impl NotSent {
    pub fn code(self) -> &'static str {
        match self {
            NotSent::AnswersOff => "ANSWERS_OFF",
            NotSent::FamilyShared => "FAMILY_SHARED",
            NotSent::NoAppAccountToken => "NO_APP_ACCOUNT_TOKEN",
            NotSent::NoConsent => "NO_CONSENT",
            NotSent::ConsentDeclined => "CONSENT_DECLINED",
        }
    }
}

/// What to do about `asked` at `now`. The caller has already closed a
/// request past its deadline.
pub fn decide(
    asked: &Asked,
    policy: Option<&Policy>,
    consent: Option<&Consent>,
    facts: Option<&Facts>,
    now: i64,
) -> Decision {
    let Some(policy) = policy.filter(|p| p.enabled) else {
        return Decision::Skip(NotSent::AnswersOff);
    };
    if asked.in_app_ownership_type == Some(InAppOwnershipType::FamilyShared) {
        return Decision::Skip(NotSent::FamilyShared);
    }
    if asked.app_account_token.is_none() {
        return Decision::Skip(NotSent::NoAppAccountToken);
    }
    let last_call = asked.deadline.saturating_sub(LAST_CALL_MS);
    match consent {
        Some(c) if c.consumption_data => {}
        _ if now < last_call => {
            return Decision::Wait {
                why: Waiting::Consent,
                until: last_call,
            }
        }
        Some(_) => return Decision::Skip(NotSent::ConsentDeclined),
        None => return Decision::Skip(NotSent::NoConsent),
    }
    let answer_at = asked
        .requested_at
        .saturating_add(policy.answer_after_ms)
        .min(last_call);
    if facts.is_none() && !asked.send_now && now < answer_at {
        return Decision::Wait {
            why: Waiting::Facts,
            until: answer_at,
        };
    }
    Decision::Send(answer(asked, policy, facts.cloned().unwrap_or_default()))
}

/// The body, within Apple's rules: no percentage for an auto-renewable
/// subscription (Apple computes it), 0 when the purchase was not
/// delivered, and GRANT_PRORATED only with a percentage above 0 where one
/// is allowed.
pub fn answer(asked: &Asked, policy: &Policy, facts: Facts) -> ConsumptionRequest {
    let subscription = asked.product_type == Some(ProductType::AutoRenewableSubscription);
    let delivery_status = facts
        .delivery_status
        .unwrap_or_else(|| policy.delivery_status.clone());
    let consumption_percentage = match facts.consumption_percentage {
        _ if subscription => None,
        Some(_) if delivery_status != DeliveryStatus::Delivered => Some(0),
        Some(p) => Some(p.clamp(0, MAX_CONSUMPTION_PERCENTAGE)),
        None => None,
    };
    let refund_preference = facts
        .refund_preference
        .or_else(|| policy.refund_preference(asked))
        .filter(|p| {
            *p != RefundPreference::GrantProrated
                || subscription
                || consumption_percentage.is_some_and(|p| p > 0)
        });
    ConsumptionRequest {
        customer_consented: true,
        consumption_percentage,
        delivery_status,
        refund_preference,
        sample_content_provided: facts
            .sample_content_provided
            .unwrap_or(policy.sample_content_provided),
    }
}

/// How much of the refunded period had passed when the customer asked, in
/// percent, when Apple signed the period.
fn used_percent(asked: &Asked) -> Option<i64> {
    let (start, end) = (asked.purchase_date?, asked.expires_date?);
    let length = i128::from(end).checked_sub(i128::from(start))?;
    if length <= 0 {
        return None;
    }
    let used = i128::from(asked.requested_at)
        .checked_sub(i128::from(start))?
        .clamp(0, length);
    let percent = used.checked_mul(100)?.checked_div(length)?;
    i64::try_from(percent).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn policy() -> Policy {
        Policy {
            enabled: true,
            answer_after_ms: HOUR,
            delivery_status: DeliveryStatus::Delivered,
            sample_content_provided: false,
            refund_preference: Some(RefundPreference::GrantFull),
            decline_after_used_percent: None,
        }
    }

    fn asked(product_type: ProductType) -> Asked {
        Asked {
            product_type: Some(product_type),
            in_app_ownership_type: Some(InAppOwnershipType::Purchased),
            app_account_token: Some("7e3fb20b-4cdb-47cc-936d-99d65f608138".into()),
            requested_at: 1_000 * HOUR,
            deadline: 1_012 * HOUR,
            purchase_date: Some(990 * HOUR),
            expires_date: Some(1_010 * HOUR),
            send_now: false,
        }
    }

    const YES: Consent = Consent {
        consumption_data: true,
        recorded_at: 0,
    };

    #[test]
    fn waits_for_facts_until_the_policy_answers_for_them() {
        let a = asked(ProductType::Consumable);
        let p = policy();
        assert_eq!(
            decide(&a, Some(&p), Some(&YES), None, 1_000 * HOUR),
            Decision::Wait {
                why: Waiting::Facts,
                until: 1_001 * HOUR
            }
        );
        let Decision::Send(body) = decide(&a, Some(&p), Some(&YES), None, 1_001 * HOUR) else {
            panic!("due");
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"customerConsented": true, "deliveryStatus": "DELIVERED",
                "refundPreference": "GRANT_FULL", "sampleContentProvided": false})
        );
    }

    #[test]
    fn facts_are_answered_at_once_and_win_over_the_policy() {
        let facts = Facts {
            delivery_status: Some(DeliveryStatus::Delivered),
            consumption_percentage: Some(25_000),
            sample_content_provided: Some(true),
            refund_preference: Some(RefundPreference::GrantProrated),
        };
        let a = asked(ProductType::Consumable);
        let Decision::Send(body) = decide(
            &a,
            Some(&policy()),
            Some(&YES),
            Some(&facts),
            a.requested_at,
        ) else {
            panic!("due");
        };
        assert_eq!(body.consumption_percentage, Some(25_000));
        assert_eq!(
            body.refund_preference,
            Some(RefundPreference::GrantProrated)
        );
        assert!(body.sample_content_provided);
    }

    #[test]
    fn a_subscription_is_never_sent_a_percentage() {
        let facts = Facts {
            consumption_percentage: Some(40_000),
            ..Facts::default()
        };
        let body = answer(
            &asked(ProductType::AutoRenewableSubscription),
            &policy(),
            facts,
        );
        assert_eq!(body.consumption_percentage, None);
    }

    #[test]
    fn undelivered_sends_zero_and_prorated_needs_a_percentage() {
        let facts = Facts {
            delivery_status: Some(DeliveryStatus::UndeliveredServerOutage),
            consumption_percentage: Some(40_000),
            refund_preference: Some(RefundPreference::GrantProrated),
            ..Facts::default()
        };
        let body = answer(&asked(ProductType::Consumable), &policy(), facts);
        assert_eq!(body.consumption_percentage, Some(0));
        assert_eq!(body.refund_preference, None);
    }

    #[test]
    fn no_answer_without_consent_nor_for_family_sharing() {
        let mut a = asked(ProductType::Consumable);
        let p = policy();
        assert_eq!(
            decide(&a, Some(&p), None, None, 1_002 * HOUR),
            Decision::Wait {
                why: Waiting::Consent,
                until: 1_011 * HOUR
            }
        );
        assert_eq!(
            decide(&a, Some(&p), None, None, 1_011 * HOUR),
            Decision::Skip(NotSent::NoConsent)
        );
        let no = Consent {
            consumption_data: false,
            recorded_at: 0,
        };
        assert_eq!(
            decide(&a, Some(&p), Some(&no), None, 1_011 * HOUR),
            Decision::Skip(NotSent::ConsentDeclined)
        );
        assert_eq!(
            decide(&a, None, Some(&YES), None, 1_011 * HOUR),
            Decision::Skip(NotSent::AnswersOff)
        );
        a.in_app_ownership_type = Some(InAppOwnershipType::FamilyShared);
        assert_eq!(
            decide(&a, Some(&p), Some(&YES), None, 1_002 * HOUR),
            Decision::Skip(NotSent::FamilyShared)
        );
    }

    #[test]
    fn the_rule_declines_a_mostly_used_period() {
        let p = Policy {
            decline_after_used_percent: Some(50),
            ..policy()
        };
        // Asked 10 hours into a 20-hour period: 50%.
        let body = answer(
            &asked(ProductType::AutoRenewableSubscription),
            &p,
            Facts::default(),
        );
        assert_eq!(body.refund_preference, Some(RefundPreference::Decline));
        let early = Asked {
            requested_at: 995 * HOUR,
            ..asked(ProductType::AutoRenewableSubscription)
        };
        let body = answer(&early, &p, Facts::default());
        assert_eq!(body.refund_preference, Some(RefundPreference::GrantFull));
    }

    #[test]
    fn extreme_dates_do_not_overflow() {
        let a = Asked {
            requested_at: i64::MAX,
            deadline: i64::MIN,
            purchase_date: Some(i64::MIN),
            expires_date: Some(i64::MAX),
            ..asked(ProductType::AutoRenewableSubscription)
        };
        let p = Policy {
            decline_after_used_percent: Some(1),
            answer_after_ms: i64::MAX,
            ..policy()
        };
        let _ = decide(&a, Some(&p), Some(&YES), None, i64::MAX);
        let _ = decide(&a, Some(&p), Some(&YES), None, i64::MIN);
    }
}
