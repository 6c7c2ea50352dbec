//! How stored notifications reach the ledger, written once above the SQL:
//! record a notification and fold it in (on top of its item's state when it
//! sorts last, by folding the item again when it does not), keep a
//! conflicting version as evidence, and rebuild the derived tables by chunks.
//!
//! A backend provides the statements behind [`LedgerTx`], one database
//! transaction at a time; how it serialises writers (SQLite's single writer,
//! row locks elsewhere) stays inside the backend.

use crate::ledger::{
    self, can_apply_after, Effect, Event, ExpirationRecord, ItemKey, Products, RefundRecord, State,
};

use super::consumption::consumption_request;
pub(super) use super::outbox::Telling;
use super::outbox::{decide, tell, LoadedTold, OutboxTx, Prior, Tell, ToldBefore};
use super::{NewEvidence, NewNotification, QuarantineReason, Recorded};

/// A stored notification as the fold reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredPayload {
    pub(super) notification_uuid: String,
    pub(super) original_transaction_id: Option<String>,
    /// The decoded notification as stored at ingest.
    pub(super) payload: String,
    /// Kept as unfolded by an earlier fold: to forget if it folds now.
    pub(super) was_unfolded: bool,
}

/// A notification kept but not folded: its stored payload does not read as a
/// ledger event. Kept so the checker can raise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unfolded {
    pub(super) notification_uuid: String,
    pub(super) original_transaction_id: Option<String>,
    pub(super) reason: String,
}

/// A refund record to insert, with its reversal when the same fold reversed it.
#[derive(Debug)]
pub(super) struct RefundRow<'a> {
    pub(super) item: &'a ItemKey,
    pub(super) original_transaction_id: &'a str,
    pub(super) refund: &'a RefundRecord,
    /// `(reversed_at, reversed_by)`.
    pub(super) reversed: Option<(i64, &'a str)>,
}

/// An expiration record to insert.
#[derive(Debug)]
pub(super) struct ExpirationRow<'a> {
    pub(super) item: &'a ItemKey,
    pub(super) original_transaction_id: &'a str,
    pub(super) expiration: &'a ExpirationRecord,
}

/// An item's stored state, as the fold finds it.
#[derive(Debug)]
pub(super) enum LoadedState {
    /// No state: nothing of this item has been folded yet.
    Absent,
    /// A state this version cannot read (an older one wrote it).
    Unreadable,
    // Boxed: a state with its timeline is large, the other variants empty.
    Readable(Box<State>),
}

impl LoadedState {
    /// From the stored JSON, if there is a row.
    pub(super) fn from_json(json: Option<&str>) -> LoadedState {
        match json {
            None => LoadedState::Absent,
            Some(json) => serde_json::from_str(json).map_or(LoadedState::Unreadable, |state| {
                LoadedState::Readable(Box::new(state))
            }),
        }
    }
}

/// What a notification's insert read of its item, where the backend
/// reads it in the same round trip.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) state: LoadedState,
    /// What was last told of the item, where the backend read it too.
    pub(super) told: Option<ToldBefore>,
}

/// The statements of one database transaction that the fold needs.
pub(super) trait LedgerTx: OutboxTx {
    /// Stores a notification and, when it is new and about `item`, loads
    /// that item's state as [`LedgerTx::load_state`] does: in one round trip
    /// where the backend can, since every notification does both. Where the
    /// same round trip can also read what was last told of the item, it
    /// does ([`Loaded::told`]).
    async fn record_and_load(
        &mut self,
        n: &NewNotification,
        item: Option<&ItemKey>,
    ) -> Result<(Recorded, Option<Loaded>), sqlx::Error>;
    /// Inserts once per `notification_uuid` (into quarantine with a reason).
    async fn insert_notification(
        &mut self,
        n: &NewNotification,
        quarantine: Option<&QuarantineReason>,
    ) -> Result<Recorded, sqlx::Error>;
    /// The stored `(signed_payload, payload)` of a notification, if any.
    async fn stored_version(&mut self, uuid: &str)
        -> Result<Option<(String, String)>, sqlx::Error>;
    async fn insert_conflict(&mut self, n: &NewNotification) -> Result<(), sqlx::Error>;
    /// Inserts once per `evidence_id`; true when it was new.
    async fn insert_evidence(&mut self, e: &NewEvidence) -> Result<bool, sqlx::Error>;
    async fn delete_quarantined(&mut self, quarantine_id: i64) -> Result<(), sqlx::Error>;

    async fn load_state(&mut self, item: &ItemKey) -> Result<LoadedState, sqlx::Error>;
    async fn item_notifications(
        &mut self,
        item: &ItemKey,
    ) -> Result<Vec<StoredPayload>, sqlx::Error>;
    /// Removes an item's refunds and expirations (its state is overwritten).
    async fn delete_item_records(&mut self, item: &ItemKey) -> Result<(), sqlx::Error>;
    /// Inserts or replaces the states of items.
    async fn save_states(&mut self, items: &[(&ItemKey, &State)]) -> Result<(), sqlx::Error>;
    /// Saves one item's state as [`LedgerTx::save_states`] does and loads
    /// what was last told of it as [`OutboxTx::load_told`] does: in one
    /// round trip where the backend can.
    async fn save_state_loading_told(
        &mut self,
        item: &ItemKey,
        state: &State,
    ) -> Result<LoadedTold, sqlx::Error>;
    /// Saves one item's state as [`LedgerTx::save_states`] does and keeps
    /// what its fold tells (if anything) as [`OutboxTx::tell`] does: in one
    /// round trip where the backend can.
    async fn save_state_telling(
        &mut self,
        item: &ItemKey,
        state: &State,
        tell: Option<&Tell<'_>>,
    ) -> Result<(), sqlx::Error>;
    async fn insert_refunds(&mut self, refunds: &[RefundRow<'_>]) -> Result<(), sqlx::Error>;
    /// Marks every stored unreversed refund of `transaction_id` reported no
    /// later than `reversed_at` as reversed.
    async fn reverse_refunds(
        &mut self,
        item: &ItemKey,
        transaction_id: &str,
        reversed_at: i64,
        reversed_by: &str,
    ) -> Result<(), sqlx::Error>;
    /// Removes the item's refund row that Refund History made for
    /// `transaction_id` (its notification made its own).
    async fn delete_api_refunds(
        &mut self,
        item: &ItemKey,
        transaction_id: &str,
    ) -> Result<(), sqlx::Error>;
    async fn insert_expirations(
        &mut self,
        expirations: &[ExpirationRow<'_>],
    ) -> Result<(), sqlx::Error>;
    /// Forgets `folded` as unfolded and keeps `unfolded` (called only when
    /// one of them is not empty).
    async fn note_unfolded(
        &mut self,
        folded: &[String],
        unfolded: &[Unfolded],
    ) -> Result<(), sqlx::Error>;

    /// The last of the next `size` original transaction ids after `after`.
    async fn chunk_end(&mut self, after: &str, size: i64) -> Result<Option<String>, sqlx::Error>;
    /// Deletes derived rows with an original transaction id in
    /// `(after, through]`, or past `after` when `through` is `None`.
    async fn delete_derived(
        &mut self,
        after: &str,
        through: Option<&str>,
    ) -> Result<(), sqlx::Error>;
    async fn range_notifications(
        &mut self,
        after: &str,
        through: &str,
    ) -> Result<Vec<StoredPayload>, sqlx::Error>;
    /// Keeps that the customer of `app_transaction_id` rescinded consent
    /// at `rescinded_date` (the earliest such notification wins).
    async fn note_rescinded_consent(
        &mut self,
        app_transaction_id: &str,
        rescinded_date: i64,
        notification_uuid: &str,
    ) -> Result<(), sqlx::Error>;
    /// Keeps that a stored notification has a shape this version does not
    /// know (`what`), for the checker.
    async fn note_unknown_shape(
        &mut self,
        n: &NewNotification,
        what: &str,
    ) -> Result<(), sqlx::Error>;
}

/// Stores a notification and, when it is new, folds it into the ledger in the
/// same transaction, so an acknowledged notification is visible to the next
/// query. A repeat with other content is kept as evidence.
pub(super) async fn record(
    tx: &mut impl LedgerTx,
    n: &NewNotification,
    products: &Products,
) -> Result<Recorded, sqlx::Error> {
    let telling = Telling {
        products,
        at: n.received_at,
        cause: &n.notification_uuid,
    };
    let item = n.event.item();
    let (recorded, mut loaded) = tx.record_and_load(n, item.as_ref()).await?;
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
    match state {
        LoadedState::Readable(state) if can_apply_after(&state, event) => {
            // Kept to compare what it said of moments already told.
            let before = (*state).clone();
            let (state, effects) = ledger::apply(Some(*state), item, event);
            save_all(
                tx,
                &[(item, &state, &effects)],
                telling,
                false,
                Some(&before),
                told,
            )
            .await
        }
        // Every event of an item is folded when it is stored, so an item
        // with no state has no other: this event alone is its fold.
        LoadedState::Absent => {
            let (state, effects) = ledger::apply(None, item, event);
            save_all(tx, &[(item, &state, &effects)], telling, true, None, told).await
        }
        LoadedState::Readable(state) => refold(tx, item, telling, Some(&state), told).await,
        LoadedState::Unreadable => refold(tx, item, telling, None, told).await,
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
