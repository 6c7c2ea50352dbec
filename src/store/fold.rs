//! How stored notifications reach the ledger, written once above the SQL:
//! record a notification and fold it in (on top of its item's state when it
//! sorts last, by folding the item again when it does not), keep a
//! conflicting version as evidence, and rebuild the derived tables by chunks.
//!
//! A backend provides the statements behind [`LedgerTx`], one database
//! transaction at a time; how it serialises writers (SQLite's single writer,
//! row locks elsewhere) stays inside the backend.

use crate::ledger::{self, can_apply_after, Effect, Event, ItemKey, Products, State};

use super::consumption::consumption_request;
use super::fold_tx::{
    ExpirationRow, LedgerTx, Loaded, LoadedState, RefundRow, StoredPayload, Unfolded,
};
pub(super) use super::outbox::Telling;
use super::outbox::{decide, tell, LoadedTold, Prior, ToldBefore};
use super::{NewEvidence, NewNotification, QuarantineReason, Recorded};

/// Stores a notification and, when it is new, folds it into the ledger in the
/// same transaction, so an acknowledged notification is visible to the next
/// query. A repeat with other content is kept as evidence.
pub(super) async fn record(
    tx: &mut impl LedgerTx,
    n: &NewNotification,
    products: &Products,
) -> Result<Recorded, sqlx::Error> {
    let item = n.event.item();
    let (recorded, loaded) = tx.record_and_load(n, item.as_ref()).await?;
    after_record(tx, n, products, recorded, loaded).await
}

/// What [`record`] does once the notification is inserted (`recorded`)
/// and, when it is new and about an item, that item loaded (`loaded`).
pub(super) async fn after_record(
    tx: &mut impl LedgerTx,
    n: &NewNotification,
    products: &Products,
    recorded: Recorded,
    mut loaded: Option<Loaded>,
) -> Result<Recorded, sqlx::Error> {
    let telling = telling_of(n, products);
    let item = n.event.item();
    if let (Recorded::Stored, Some(what)) = (&recorded, &n.novelty) {
        // Stored and acknowledged like any genuine notification; the
        // checker says what this version did not know of it.
        tx.note_unknown_shape(n, what).await?;
    }
    if let (Recorded::Stored, Some(customer)) = (&recorded, rescinded_consent(n)) {
        tx.note_rescinded_consent(
            &customer,
            n.signed_date.unwrap_or(n.received_at),
            &n.notification_uuid,
        )
        .await?;
        super::retell::retell_customer(tx, &customer, &telling).await?;
        // What was told of the item, and the consents, read before are
        // what this transaction just changed.
        if let Some(loaded) = loaded.as_mut() {
            loaded.told = None;
        }
    }
    if recorded == Recorded::Stored {
        if let Some(request) = consumption_request(n) {
            tx.open_consumption_request(&request).await?;
        }
    }
    match (recorded, item, loaded) {
        (Recorded::Stored, Some(item), Some(loaded)) => {
            apply_loaded(tx, &item, loaded, &n.event, &telling).await?;
        }
        (Recorded::Stored, _, _) => {}
        _ => keep_if_conflicting(tx, n).await?,
    }
    Ok(recorded)
}

/// How a notification's fold tells consumers: at its receipt, caused by it.
pub(super) fn telling_of<'a>(n: &'a NewNotification, products: &'a Products) -> Telling<'a> {
    Telling {
        products,
        at: n.received_at,
        cause: &n.notification_uuid,
    }
}

/// Whether [`after_record`] does more for a new notification than fold it
/// into its item: what it does not know of its shape, a customer's consent
/// withdrawn, a consumption request.
pub(super) fn more_than_a_fold(n: &NewNotification) -> bool {
    n.novelty.is_some() || rescinded_consent(n).is_some() || consumption_request(n).is_some()
}

/// The customer a RESCIND_CONSENT is about: the appTransactionId of the
/// app transaction it carries (verified, decoded in the stored payload).
fn rescinded_consent(n: &NewNotification) -> Option<String> {
    if n.notification_type != crate::model::NotificationType::RescindConsent {
        return None;
    }
    let payload: serde_json::Value = serde_json::from_str(&n.payload).ok()?;
    payload
        .pointer("/appData/signedAppTransactionInfo/appTransactionId")?
        .as_str()
        .map(str::to_owned)
}

/// Keeps Apple's answer and, when it is new, folds it like a notification:
/// by its signedDate, so a later push still wins.
pub(super) async fn record_evidence(
    tx: &mut impl LedgerTx,
    e: &NewEvidence,
    products: &Products,
) -> Result<bool, sqlx::Error> {
    if !tx.insert_evidence(e).await? {
        return Ok(false);
    }
    let telling = Telling {
        products,
        at: e.fetched_at,
        cause: &e.evidence_id,
    };
    apply(tx, &e.event, &telling).await?;
    Ok(true)
}

/// Keeps a genuine notification aside, unless it is already accepted.
pub(super) async fn quarantine(
    tx: &mut impl LedgerTx,
    n: &NewNotification,
    reason: &QuarantineReason,
) -> Result<Recorded, sqlx::Error> {
    if tx.stored_version(&n.notification_uuid).await?.is_some() {
        return Ok(Recorded::AlreadyAccepted);
    }
    tx.insert_notification(n, Some(reason)).await
}

/// Moves a quarantined notification among the accepted ones.
pub(super) async fn release(
    tx: &mut impl LedgerTx,
    quarantine_id: i64,
    n: &NewNotification,
    products: &Products,
) -> Result<Recorded, sqlx::Error> {
    let recorded = record(tx, n, products).await?;
    tx.delete_quarantined(quarantine_id).await?;
    Ok(recorded)
}

/// Folds a just-stored event into its item: on top of the state when it
/// sorts last, else by folding all of the item's notifications again.
async fn apply(
    tx: &mut impl LedgerTx,
    event: &Event,
    telling: &Telling<'_>,
) -> Result<(), sqlx::Error> {
    let Some(item) = event.item() else {
        return Ok(());
    };
    let loaded = Loaded {
        state: tx.load_state(&item).await?,
        told: None,
    };
    apply_loaded(tx, &item, loaded, event, telling).await
}

async fn apply_loaded(
    tx: &mut impl LedgerTx,
    item: &ItemKey,
    loaded: Loaded,
    event: &Event,
    telling: &Telling<'_>,
) -> Result<(), sqlx::Error> {
    let Loaded { state, told } = loaded;
    match fold_on_top(state, item, event) {
        Ok(folded) => save_on_top(tx, item, folded, telling, told).await,
        Err(LoadedState::Readable(state)) => refold(tx, item, telling, Some(&state), told).await,
        Err(_) => refold(tx, item, telling, None, told).await,
    }
}

/// Saves an event folded on top of its item's state, with the rows its
/// effects make and what it tells; `told`: what was told of the item, when
/// already read.
pub(super) async fn save_on_top(
    tx: &mut impl LedgerTx,
    item: &ItemKey,
    folded: FoldedOnTop,
    telling: &Telling<'_>,
    told: Option<ToldBefore>,
) -> Result<(), sqlx::Error> {
    let FoldedOnTop {
        state,
        effects,
        full,
        before,
    } = folded;
    save_all(
        tx,
        &[(item, &state, &effects)],
        telling,
        full,
        before.as_ref(),
        told,
    )
    .await
}

/// An item's state after an event folded on top of the state it had.
pub(super) struct FoldedOnTop {
    pub(super) state: State,
    pub(super) effects: Vec<Effect>,
    /// The effects are those of every event of the item.
    pub(super) full: bool,
    /// The state before, kept to compare what it said of moments already
    /// told.
    pub(super) before: Option<State>,
}

/// `event` folded on top of the item's loaded state, when it sorts after
/// every event folded into it; else the state back: the item must be
/// folded again from all its notifications.
pub(super) fn fold_on_top(
    state: LoadedState,
    item: &ItemKey,
    event: &Event,
) -> Result<FoldedOnTop, LoadedState> {
    match state {
        LoadedState::Readable(state) if can_apply_after(&state, event) => {
            let before = (*state).clone();
            let (state, effects) = ledger::apply(Some(*state), item, event);
            Ok(FoldedOnTop {
                state,
                effects,
                full: false,
                before: Some(before),
            })
        }
        // Every event of an item is folded when it is stored, so an item
        // with no state has no other: this event alone is its fold.
        LoadedState::Absent => {
            let (state, effects) = ledger::apply(None, item, event);
            Ok(FoldedOnTop {
                state,
                effects,
                full: true,
                before: None,
            })
        }
        other => Err(other),
    }
}

async fn refold(
    tx: &mut impl LedgerTx,
    item: &ItemKey,
    telling: &Telling<'_>,
    before: Option<&State>,
    told: Option<ToldBefore>,
) -> Result<(), sqlx::Error> {
    let stored = tx.item_notifications(item).await?;
    let events = read_events(tx, stored).await?;
    tx.delete_item_records(item).await?;
    if let Some((state, effects)) = ledger::fold(item, events) {
        save_all(tx, &[(item, &state, &effects)], telling, true, before, told).await?;
    }
    Ok(())
}

/// Reads stored payloads as events; one that does not read is noted, never
/// silently dropped.
async fn read_events(
    tx: &mut impl LedgerTx,
    stored: Vec<StoredPayload>,
) -> Result<Vec<Event>, sqlx::Error> {
    let mut events = Vec::with_capacity(stored.len());
    let mut folded = Vec::new();
    let mut unfolded = Vec::new();
    for s in stored {
        match Event::parse(&s.payload) {
            Ok(event) => {
                if s.was_unfolded {
                    folded.push(s.notification_uuid);
                }
                events.push(event);
            }
            Err(error) => {
                tracing::error!(notification_uuid = %s.notification_uuid, %error,
                    "a stored notification does not read as a ledger event; not folded");
                unfolded.push(Unfolded {
                    notification_uuid: s.notification_uuid,
                    original_transaction_id: s.original_transaction_id,
                    reason: error.to_string(),
                });
            }
        }
    }
    // Nearly always nothing to note: then no statement at all.
    if !folded.is_empty() || !unfolded.is_empty() {
        tx.note_unfolded(&folded, &unfolded).await?;
    }
    Ok(events)
}

/// Saves items with the records their effects make, in as few statements as
/// the backend allows (a rebuild saves thousands of items per transaction),
/// and the entitlement events each item's new answer makes. `full`: the
/// effects are those of every event of the items (a fold from the first).
/// `before`: a fold of one item, the state it had before. `told`: a fold
/// of one item, what was last told of it when already read.
async fn save_all(
    tx: &mut impl LedgerTx,
    items: &[(&ItemKey, &State, &[Effect])],
    telling: &Telling<'_>,
    full: bool,
    before: Option<&State>,
    told: Option<ToldBefore>,
) -> Result<(), sqlx::Error> {
    // A fold of one item (every notification's) keeps what it tells with
    // its save when what was told was read with the notification, else
    // loads that with its save: one round trip either way where the
    // backend can.
    let told = match items {
        [(item, state, effects)] => {
            match told.and_then(|t| t.for_customer(state.app_transaction_id.as_deref())) {
                Some(loaded) => {
                    let tell = decide(item, state, effects, telling, full, before, loaded);
                    tx.save_state_telling(item, state, tell.as_ref()).await?;
                    Told::Kept
                }
                None => Told::Loaded(tx.save_state_loading_told(item, state).await?),
            }
        }
        _ => {
            let states: Vec<(&ItemKey, &State)> = items.iter().map(|(i, s, _)| (*i, *s)).collect();
            tx.save_states(&states).await?;
            Told::ToLoad
        }
    };
    let mut refunds = Vec::new();
    let mut expirations = Vec::new();
    for (item, state, effects) in items {
        let original_transaction_id = state
            .original_transaction_id
            .as_deref()
            .unwrap_or(item.id());
        let first_refund = refunds.len();
        for effect in *effects {
            match effect {
                Effect::Refund(refund) => refunds.push(RefundRow {
                    item,
                    original_transaction_id,
                    refund,
                    reversed: None,
                }),
                Effect::RefundReversed {
                    transaction_id,
                    reversed_at,
                    reversed_by,
                } => {
                    // Refunds stored by earlier transactions, then the ones
                    // this fold is about to insert.
                    tx.reverse_refunds(item, transaction_id, *reversed_at, reversed_by)
                        .await?;
                    for row in refunds.iter_mut().skip(first_refund) {
                        if row.reversed.is_none()
                            && row.refund.transaction_id.as_deref() == Some(transaction_id.as_str())
                            && row.refund.signed_date <= *reversed_at
                        {
                            row.reversed = Some((*reversed_at, reversed_by.as_str()));
                        }
                    }
                }
                Effect::ApiRefundSuperseded { transaction_id } => {
                    tx.delete_api_refunds(item, transaction_id).await?;
                    refunds.retain(|row| {
                        row.refund.source != crate::ledger::REFUND_FROM_APPLE_API
                            || row.refund.transaction_id.as_deref() != Some(transaction_id.as_str())
                            || row.item != *item
                    });
                }
                Effect::Expiration(expiration) => expirations.push(ExpirationRow {
                    item,
                    original_transaction_id,
                    expiration,
                }),
            }
        }
    }
    tx.insert_refunds(&refunds).await?;
    tx.insert_expirations(&expirations).await?;
    let mut told = match told {
        Told::Kept => return Ok(()),
        Told::Loaded(loaded) => Some(loaded),
        Told::ToLoad => None,
    };
    for (item, state, effects) in items {
        let prior = Prior {
            full,
            state: before.filter(|_| items.len() == 1),
            told: told.take(),
        };
        tell(tx, item, state, effects, telling, prior).await?;
    }
    Ok(())
}

/// Where [`save_all`] stands with what its fold tells.
enum Told {
    /// Kept with the item's save.
    Kept,
    /// What was last told, loaded with the item's save.
    Loaded(LoadedTold),
    /// Still to load and keep.
    ToLoad,
}

/// Rebuilds the items of the next `size` original transaction ids after
/// `after`. Returns the last id done (`None` when there are no more) and how
/// many notifications were read.
pub(super) async fn rebuild_chunk(
    tx: &mut impl LedgerTx,
    after: &str,
    size: i64,
    telling: &Telling<'_>,
) -> Result<(Option<String>, u64), sqlx::Error> {
    let Some(last) = tx.chunk_end(after, size).await? else {
        // Past the last notification: derived rows left here belong to no
        // stored notification (a corrupted table, or an item a rule change
        // now files elsewhere) and must not survive a rebuild.
        tx.delete_derived(after, None).await?;
        return Ok((None, 0));
    };
    tx.delete_derived(after, Some(&last)).await?;
    let stored = tx.range_notifications(after, &last).await?;
    let read = stored.len() as u64;
    let events = read_events(tx, stored).await?;
    let folded = ledger::fold_all(events);
    let items: Vec<(&ItemKey, &State, &[Effect])> = folded
        .iter()
        .map(|(item, (state, effects))| (item, state, effects.as_slice()))
        .collect();
    save_all(tx, &items, telling, true, None, None).await?;
    Ok((Some(last), read))
}

/// A repeat of a stored notificationUUID whose content differs (signing dates
/// aside: a re-signed retry may change them) is kept as evidence.
async fn keep_if_conflicting(
    tx: &mut impl LedgerTx,
    n: &NewNotification,
) -> Result<(), sqlx::Error> {
    let Some((signed_payload, payload)) = tx.stored_version(&n.notification_uuid).await? else {
        return Ok(());
    };
    if signed_payload == n.signed_payload || same_content(&payload, &n.payload) {
        return Ok(());
    }
    tx.insert_conflict(n).await
}

fn same_content(a: &str, b: &str) -> bool {
    fn without_signed_dates(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("signedDate");
                map.values_mut().for_each(without_signed_dates);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(without_signed_dates),
            _ => {}
        }
    }
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(mut a), Ok(mut b)) => {
            without_signed_dates(&mut a);
            without_signed_dates(&mut b);
            a == b
        }
        _ => a == b,
    }
}
