//! What the support console renders, from fuzzed folded states: a
//! customer's timeline (its SVG included) and the refund audit (its totals
//! and per-day bars), with dates anywhere in i64, prices at its ends, long
//! strings full of markup. Every 32 bytes make one notification. What must
//! hold: no panic, and a page whose size is bounded by what it shows (a
//! span of dates never turns into a count of bars).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

use appstore_ledger::console::timeline::steps;
use appstore_ledger::http::console_render::{customer_timeline, refund_audit, ItemStory};
use appstore_ledger::ledger::{
    fold_all, Event, EventData, RefundRecord, RenewalFacts, TransactionFacts,
};
use appstore_ledger::model::{
    AutoRenewStatus, NotificationType, ProductType, RevocationReason, SubscriptionStatus, Subtype,
};
use appstore_ledger::store::{FindingEntry, LedgerItem, RefundEntry};

const DAY: i64 = 86_400_000;
const START: i64 = 1_700_000_000_000;

const TYPES: &[&str] = &[
    "SUBSCRIBED",
    "DID_RENEW",
    "DID_FAIL_TO_RENEW",
    "GRACE_PERIOD_EXPIRED",
    "EXPIRED",
    "DID_CHANGE_RENEWAL_PREF",
    "REFUND",
    "REFUND_REVERSED",
    "REVOKE",
    "ONE_TIME_CHARGE",
    "CONSUMPTION_REQUEST",
    "SOMETHING_NEW",
];
const SUBTYPES: &[Option<&str>] = &[
    None,
    Some("INITIAL_BUY"),
    Some("GRACE_PERIOD"),
    Some("BILLING_RETRY"),
    Some("UPGRADE"),
    Some("VOLUNTARY"),
];
/// Dates an attacker or a bug could sign.
const EXTREMES: &[i64] = &[
    i64::MIN,
    i64::MIN + 1,
    -9_000_000_000_000_000_000,
    -DAY,
    -1,
    0,
    1,
    START,
    9_000_000_000_000_000_000,
    i64::MAX - DAY,
    i64::MAX - 1,
    i64::MAX,
];

fn pick<T: Copy>(table: &[T], byte: u8) -> T {
    table[usize::from(byte) % table.len()]
}

/// A date: near START when `tame`, else from the extremes or raw bytes.
fn date(tame: bool, bytes: [u8; 8]) -> i64 {
    let raw = i64::from_be_bytes(bytes);
    if tame {
        START + (raw % 400) * DAY
    } else if bytes[0] & 1 == 0 {
        pick(EXTREMES, bytes[1])
    } else {
        raw
    }
}

/// A string of about `n` characters that markup, quoting and wide
/// characters all try to break.
fn text(prefix: &str, n: u8) -> String {
    let mut s = prefix.to_owned();
    for _ in 0..usize::from(n) {
        s.push_str("<&\"'é>");
    }
    s
}

struct Made {
    event: Event,
    refund: Option<RefundEntry>,
    /// Characters of outside text it carries.
    text_chars: usize,
}

fn made(index: usize, b: &[u8; 32]) -> Made {
    let kind = b[0];
    let subtype = b[1];
    let item = b[2];
    let flags = b[3];
    let at = |from: usize| -> [u8; 8] { b[from..from + 8].try_into().unwrap() };
    let tame = flags & 0x80 != 0;
    let purchase = date(tame, at(4));
    let expires = date(tame, at(12));
    let signed = date(flags & 0x40 != 0, at(20));
    let long = b[28];
    let price = match b[29] % 4 {
        0 => 9990,
        1 => i64::MAX,
        2 => i64::MIN,
        _ => i64::from(b[29]) * 1_000_000_007,
    };
    let (otid, product_type) = match item % 3 {
        0 => (
            format!("s{}", item % 2),
            ProductType::AutoRenewableSubscription,
        ),
        1 => (format!("p{index}"), ProductType::NonConsumable),
        _ => (text("o", long / 8), ProductType::AutoRenewableSubscription),
    };
    let product = text("product", long);
    let currency = text("C", long / 4);
    let revoked = flags & 0x01 != 0;
    let revocation = date(flags & 0x02 != 0, at(4).map(|x| x.rotate_left(3)));
    let transaction = TransactionFacts {
        transaction_id: Some(format!("{otid}-t{index}")),
        original_transaction_id: Some(otid.clone()),
        product_id: Some(product.clone()),
        product_type: Some(product_type),
        purchase_date: Some(purchase),
        original_purchase_date: Some(purchase),
        expires_date: (flags & 0x04 == 0).then_some(expires),
        signed_date: Some(signed),
        revocation_date: revoked.then_some(revocation),
        revocation_reason: revoked.then_some(RevocationReason::from_raw(i64::from(b[30] % 3))),
        app_account_token: Some(text("acct", long / 16)),
        price: Some(price),
        currency: Some(currency.clone()),
        ..TransactionFacts::default()
    };
    let renewal = RenewalFacts {
        original_transaction_id: Some(otid.clone()),
        auto_renew_product_id: Some(product.clone()),
        auto_renew_status: Some(AutoRenewStatus::On),
        grace_period_expires_date: (flags & 0x08 != 0)
            .then_some(date(tame, at(12).map(u8::reverse_bits))),
        renewal_date: (flags & 0x10 != 0).then_some(expires),
        signed_date: Some(signed),
        ..RenewalFacts::default()
    };
    let notification_type = pick(TYPES, kind);
    let uuid = format!("n{index:05}");
    let event = Event {
        notification_uuid: uuid.clone(),
        notification_type: NotificationType::from_raw(notification_type),
        subtype: pick(SUBTYPES, subtype).map(Subtype::from_raw),
        signed_date: Some(signed),
        data: Some(EventData {
            bundle_id: Some("com.example.app".into()),
            environment: Some("Sandbox".into()),
            status: (b[30] & 0x08 != 0).then(|| SubscriptionStatus::from_raw(i64::from(b[30] % 7))),
            signed_transaction_info: Some(transaction),
            signed_renewal_info: (flags & 0x20 != 0).then_some(renewal),
            consumption_request_reason: None,
        }),
        reported_app_account_token: None,
        unclaim_info: None,
    };
    let refund = matches!(notification_type, "REFUND" | "REVOKE").then(|| RefundEntry {
        refund: RefundRecord {
            notification_uuid: uuid,
            notification_type: notification_type.to_owned(),
            transaction_id: Some(format!("{otid}-t{index}")),
            original_transaction_id: Some(otid.clone()),
            product_id: Some(product.clone()),
            bundle_id: Some("com.example.app".into()),
            environment: Some("Sandbox".into()),
            revocation_date: Some(revocation),
            revocation_reason: Some(i64::from(b[30])),
            revocation_type: Some(text("type", long / 8)),
            revocation_percentage: Some(i64::from(b[31]) * 1_000),
            price: Some(price),
            currency: Some(currency.clone()),
            signed_date: signed,
            subtype: (b[31] & 2 != 0).then(|| "SEATS".to_owned()),
            revoked_seat_quantity: (b[31] & 2 != 0).then_some(i64::from(b[30])),
            source: if b[31] & 4 != 0 {
                appstore_ledger::ledger::REFUND_FROM_APPLE_API
            } else {
                appstore_ledger::ledger::REFUND_FROM_NOTIFICATION
            },
        },
        refund_date: revocation,
        reversed_at: (b[31] & 1 != 0).then_some(signed),
        reversed_by: None,
    });
    let text_chars = otid.len() + product.len() + currency.len() + usize::from(long) * 6;
    Made {
        event,
        refund,
        text_chars,
    }
}

fuzz_target!(|data: &[u8]| {
    let made: Vec<Made> = data
        .chunks_exact(32)
        .take(48)
        .enumerate()
        .filter_map(|(i, chunk)| chunk.try_into().ok().map(|b| made(i, b)))
        .collect();
    let now = data
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(START, i64::from_be_bytes);
    let text_chars: usize = made.iter().map(|m| m.text_chars).sum();
    let events: Vec<Event> = made.iter().map(|m| m.event.clone()).collect();
    let refunds: Vec<RefundEntry> = made.iter().filter_map(|m| m.refund.clone()).collect();
    let payloads: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();

    let mut stories = Vec::new();
    for (item, (state, _)) in fold_all(events) {
        let (item_steps, _) = steps(&item, &payloads);
        let original = state.original_transaction_id.clone();
        stories.push(ItemStory {
            arrived: item_steps
                .iter()
                .map(|s| (s.event.notification_uuid.clone(), now))
                .collect::<HashMap<_, _>>(),
            steps: item_steps,
            // A rescinded consent at a fuzzed date, for every other item.
            consent_rescinded: (stories.len() % 2 == 1).then_some(state.last_signed_date),
            refunds: refunds
                .iter()
                .filter(|r| r.refund.original_transaction_id == original)
                .cloned()
                .collect(),
            findings: vec![FindingEntry {
                kind: "IDENTITY_MISMATCH".into(),
                subject: item.id().to_owned(),
                original_transaction_id: original,
                bundle_id: None,
                environment: None,
                detail: "<script>".repeat(made.len()),
                first_seen: now,
                last_seen: now,
                resolved_at: None,
                resolution: None,
            }],
            item: LedgerItem { item, state },
        });
    }

    // Each notification and refund shows its text a few times over (the
    // steps, the SVG's titles, the refunds), escaped: at most six bytes a
    // character; the rest of a row is a few hundred bytes.
    let shown = made.len() + refunds.len();
    let bound = 100_000 + shown * 6_000 + text_chars * 6 * 8 * stories.len().max(1);
    let page = customer_timeline("<subject>", &stories, now);
    assert!(
        page.len() <= bound,
        "timeline of {} bytes for {shown} rows",
        page.len()
    );
    assert!(!page.contains("<script>"), "unescaped text");
    let audit = refund_audit(&refunds, data.len().is_multiple_of(2));
    let bound = 100_000 + refunds.len() * 6_000 + text_chars * 6 * 4;
    assert!(
        audit.len() <= bound,
        "refund audit of {} bytes for {} refunds",
        audit.len(),
        refunds.len()
    );
});
