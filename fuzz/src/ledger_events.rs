//! The ledger_fold target's input, shared with the test that folds every
//! seed (tests/fuzz_seeds.rs includes this file by path): every 8 bytes
//! make one notification (type, subtype, item, period, signing offset,
//! flags, status), each with its own UUID.

use appstore_ledger::ledger::{Event, EventData, RenewalFacts, TransactionFacts};
use appstore_ledger::model::{
    AutoRenewStatus, NotificationType, ProductType, RevocationReason, SubscriptionStatus, Subtype,
};

pub const DAY: i64 = 86_400_000;
pub const START: i64 = 1_700_000_000_000;

const TYPES: &[&str] = &[
    "SUBSCRIBED",
    "DID_RENEW",
    "DID_FAIL_TO_RENEW",
    "GRACE_PERIOD_EXPIRED",
    "EXPIRED",
    "DID_CHANGE_RENEWAL_STATUS",
    "DID_CHANGE_RENEWAL_PREF",
    "OFFER_REDEEMED",
    "PRICE_INCREASE",
    "RENEWAL_EXTENDED",
    "REFUND",
    "REFUND_DECLINED",
    "REFUND_REVERSED",
    "REVOKE",
    "CONSUMPTION_REQUEST",
    "ONE_TIME_CHARGE",
    "TEST",
    "SOMETHING_NEW",
];
const SUBTYPES: &[Option<&str>] = &[
    None,
    Some("INITIAL_BUY"),
    Some("RESUBSCRIBE"),
    Some("BILLING_RECOVERY"),
    Some("GRACE_PERIOD"),
    Some("VOLUNTARY"),
    Some("BILLING_RETRY"),
    Some("UPGRADE"),
    Some("DOWNGRADE"),
    Some("AUTO_RENEW_DISABLED"),
    Some("PENDING"),
];

fn pick<T: Copy>(table: &[T], byte: u8) -> T {
    table[usize::from(byte) % table.len()]
}

pub fn event(index: usize, b: [u8; 8]) -> Event {
    let [kind, subtype, item, period, off_hi, off_lo, flags, status] = b;
    let period = i64::from(period % 5);
    let purchase = START + period * 30 * DAY;
    let offset = i64::from(u16::from_be_bytes([off_hi, off_lo])) * 60_000;
    let signed = if flags & 0x80 != 0 {
        START
    } else {
        purchase + offset
    };
    let (otid, tid, product_type) = match item % 4 {
        0 | 1 => (
            format!("s{}", item % 2),
            format!("s{}-t{period}", item % 2),
            ProductType::AutoRenewableSubscription,
        ),
        2 => (
            "p-life".to_owned(),
            "p-life".to_owned(),
            ProductType::NonConsumable,
        ),
        _ => (
            "p-coin".to_owned(),
            "p-coin".to_owned(),
            ProductType::Consumable,
        ),
    };
    let revoked = flags & 0x01 != 0;
    let transaction = TransactionFacts {
        transaction_id: Some(tid),
        original_transaction_id: Some(otid.clone()),
        product_id: Some(if flags & 0x02 != 0 { "pro" } else { "basic" }.into()),
        subscription_group_identifier: Some("g".into()),
        product_type: Some(product_type),
        purchase_date: Some(purchase),
        original_purchase_date: Some(START),
        expires_date: (flags & 0x40 == 0).then_some(purchase + 30 * DAY),
        signed_date: Some(signed + i64::from(status & 0x0f) * 1000),
        revocation_date: revoked.then_some(signed - 1000),
        revocation_reason: revoked.then_some(RevocationReason::from_raw(i64::from(status >> 7))),
        is_upgraded: Some(flags & 0x04 != 0),
        app_account_token: Some(format!("account-{}", flags & 0x08)),
        price: Some(9990),
        currency: Some("USD".into()),
        ..TransactionFacts::default()
    };
    let renewal = RenewalFacts {
        original_transaction_id: Some(otid),
        auto_renew_product_id: Some("basic".into()),
        auto_renew_status: Some(if flags & 0x10 != 0 {
            AutoRenewStatus::On
        } else {
            AutoRenewStatus::Off
        }),
        grace_period_expires_date: (flags & 0x20 != 0).then_some(purchase + 36 * DAY),
        renewal_date: (status & 0x30 != 0)
            .then_some(START + i64::from((status >> 4) & 3) * 30 * DAY),
        signed_date: Some(signed),
        ..RenewalFacts::default()
    };
    Event {
        notification_uuid: format!("n{index:05}"),
        notification_type: NotificationType::from_raw(pick(TYPES, kind)),
        subtype: pick(SUBTYPES, subtype).map(Subtype::from_raw),
        signed_date: (flags & 0x40 == 0 || item & 0x80 == 0).then_some(signed),
        data: Some(EventData {
            bundle_id: Some("com.example.app".into()),
            environment: Some("Sandbox".into()),
            status: (status & 0x08 != 0)
                .then(|| SubscriptionStatus::from_raw(i64::from(status % 7))),
            signed_transaction_info: (item & 0x40 == 0).then_some(transaction),
            signed_renewal_info: (item & 0x20 == 0 && product_type_is_subscription(item))
                .then_some(renewal),
            consumption_request_reason: None,
        }),
        reported_app_account_token: None,
        unclaim_info: None,
    }
}

pub fn product_type_is_subscription(item: u8) -> bool {
    item % 4 < 2
}

/// The notifications `data` makes: at most 64.
pub fn events(data: &[u8]) -> Vec<Event> {
    data.chunks_exact(8)
        .take(64)
        .enumerate()
        .filter_map(|(i, chunk)| chunk.try_into().ok().map(|b| event(i, b)))
        .collect()
}
