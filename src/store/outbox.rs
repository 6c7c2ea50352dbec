//! The fold's outbox: after each fold, the answer about an item is compared
//! with the one consumers were last told, and each change is kept as an
//! entitlement event in the same transaction (see [`crate::ledger::Told`]).
//! Also the consumption request a CONSUMPTION_REQUEST opens, which is
//! likewise kept with the notification.

use crate::ledger::{
    changes, changes_at, correction, event_kinds, reversals, Effect, ItemKey, Products, State, Told,
};

/// What a fold tells consumers with: the moment of the answer, what
/// non-renewing products last, and what caused it (a notificationUUID, an
/// evidence id, `rebuild`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Telling<'a> {
    pub(super) products: &'a Products,
    pub(super) at: i64,
    pub(super) cause: &'a str,
}

/// An entitlement event to keep in the outbox.
#[derive(Debug)]
pub(super) struct EventRow<'a> {
    pub(super) event_id: String,
    pub(super) item: &'a ItemKey,
    pub(super) sequence: i64,
    pub(super) kind: &'static str,
    pub(super) cause: &'a str,
    pub(super) occurred_at: i64,
    /// The event as consumers receive it (JSON).
    pub(super) data: String,
}

/// The answer told about an item, to keep.
#[derive(Debug, Clone, Copy)]
pub(super) struct NewTold<'a> {
    /// The answer (JSON).
    pub(super) answer: &'a str,
    /// The item's last event's sequence.
    pub(super) sequence: i64,
    pub(super) told_at: i64,
    /// When time alone may change the answer.
    pub(super) changes_at: Option<i64>,
}

/// A consumption request to open: what the job needs of its
/// CONSUMPTION_REQUEST, without reading the payload again.
#[derive(Debug)]
pub(super) struct NewConsumptionRequest<'a> {
    pub(super) notification_uuid: &'a str,
    pub(super) transaction: &'a crate::ledger::TransactionFacts,
    pub(super) transaction_id: &'a str,
    pub(super) bundle_id: Option<&'a str>,
    pub(super) environment: Option<&'a str>,
    pub(super) reason: Option<&'a str>,
    pub(super) requested_at: i64,
    pub(super) received_at: i64,
    pub(super) deadline: i64,
}

/// What a fold knew before it told.
#[derive(Debug, Default)]
pub(super) struct Prior<'a> {
    /// The effects are those of every event of the item (a fold from the
    /// first).
    pub(super) full: bool,
    /// The item's state before this fold, when there was one: the answers
    /// it gave for moments already told are compared with the new state's
    /// (ANSWER_CORRECTED).
    pub(super) state: Option<&'a State>,
    /// What consumers were last told, when the fold already loaded it with
    /// the item's state saved; else [`tell`] loads it.
    pub(super) told: Option<LoadedTold>,
}

/// What consumers were last told about an item, as stored.
#[derive(Debug, Default)]
pub(super) struct LoadedTold {
    /// The answer (JSON), absent before anything was told.
    pub(super) answer: Option<String>,
    /// The last event's sequence (0: none yet).
    pub(super) sequence: i64,
    /// The moment it was told for.
    pub(super) told_at: Option<i64>,
    /// When time alone may change it.
    pub(super) changes_at: Option<i64>,
    /// When the item's customer withdrew consent, if they did.
    pub(super) consent_rescinded_date: Option<i64>,
}

/// What was last told of an item, read before its fold with the
/// notification's insert (where the backend can), and when each customer
/// the fold may name withdrew consent: the item's state names the customer
/// its notification names, or else the one it named before.
#[derive(Debug)]
pub(super) struct ToldBefore {
    /// Its `consent_rescinded_date` is not read yet: see [`Self::for_customer`].
    pub(super) told: LoadedTold,
    /// `(appTransactionId, rescinded_date)` of each customer read.
    pub(super) consents: Vec<(String, Option<i64>)>,
}

impl ToldBefore {
    /// What [`OutboxTx::load_told`] would read for a state naming
    /// `customer`, if that customer's consent was read.
    pub(super) fn for_customer(self, customer: Option<&str>) -> Option<LoadedTold> {
        let consent_rescinded_date = match customer {
            None => None,
            Some(customer) => self.consents.iter().find(|(c, _)| c == customer)?.1,
        };
        Some(LoadedTold {
            consent_rescinded_date,
            ..self.told
        })
    }
}

/// What a fold tells: the answer to keep as told and the events its
/// change made (none when only the moment time alone changes it moved).
#[derive(Debug)]
pub(super) struct Tell<'a> {
    answer: String,
    sequence: i64,
    told_at: i64,
    changes_at: Option<i64>,
    pub(super) events: Vec<EventRow<'a>>,
}

impl Tell<'_> {
    pub(super) fn told(&self) -> NewTold<'_> {
        NewTold {
            answer: &self.answer,
            sequence: self.sequence,
            told_at: self.told_at,
            changes_at: self.changes_at,
        }
    }
}

/// The statements of the fold's transaction that keep what it tells.
pub(super) trait OutboxTx {
    /// What consumers were last told about `item`, and whether the
    /// customer of `app_transaction_id` withdrew consent: one round trip.
    async fn load_told(
        &mut self,
        item: &ItemKey,
        app_transaction_id: Option<&str>,
    ) -> Result<LoadedTold, sqlx::Error>;
    /// Keeps the answer told about `item` now, its last sequence, and when
    /// time alone may change it, with the events the change made (once per
    /// event id): in one round trip where the backend can.
    async fn tell(
        &mut self,
        item: &ItemKey,
        told: NewTold<'_>,
        events: &[EventRow<'_>],
    ) -> Result<(), sqlx::Error>;
    /// The items whose customer is `app_transaction_id`.
    async fn customer_items(
        &mut self,
        app_transaction_id: &str,
    ) -> Result<Vec<ItemKey>, sqlx::Error>;
    /// Up to `limit` items whose answer told time changes by `now`, with
    /// the moment it does.
    async fn told_due(&mut self, now: i64, limit: i64) -> Result<Vec<(ItemKey, i64)>, sqlx::Error>;
    /// Where seeding the answers told stands: `None` when it is done,
    /// else the last item key seeded (`""` before the first).
    async fn seeding(&mut self) -> Result<Option<String>, sqlx::Error>;
    /// Up to `limit` items after `after` (`kind:item_id`), with their
    /// state (JSON), in key order.
    async fn items_after(
        &mut self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(ItemKey, String)>, sqlx::Error>;
    /// Keeps an answer as told with no event, where none is told yet.
    async fn seed_told(
        &mut self,
        item: &ItemKey,
        answer: &str,
        at: i64,
        changes_at: Option<i64>,
    ) -> Result<(), sqlx::Error>;
    /// Notes how far seeding went (`None`: done).
    async fn seeded(&mut self, through: Option<&str>) -> Result<(), sqlx::Error>;
    /// Opens the consumption request a CONSUMPTION_REQUEST made (once).
    async fn open_consumption_request(
        &mut self,
        request: &NewConsumptionRequest,
    ) -> Result<(), sqlx::Error>;
}

/// Compares the answer about `item` now with the one consumers were last
/// told, and keeps the events the change makes, in this transaction: the
/// outbox. Nothing when nothing changed (a repeat, a rebuild of an
/// unchanged ledger).
pub(super) async fn tell(
    tx: &mut impl OutboxTx,
    item: &ItemKey,
    state: &State,
    effects: &[Effect],
    telling: &Telling<'_>,
    prior: Prior<'_>,
) -> Result<(), sqlx::Error> {
    let loaded = match prior.told {
        Some(loaded) => loaded,
        None => {
            tx.load_told(item, state.app_transaction_id.as_deref())
                .await?
        }
    };
    match decide(
        item,
        state,
        effects,
        telling,
        prior.full,
        prior.state,
        loaded,
    ) {
        Some(tell) => tx.tell(item, tell.told(), &tell.events).await,
        None => Ok(()),
    }
}

/// What [`tell`] keeps, given what was last told (`loaded`): `None` when
/// nothing changed, not even when time alone changes the answer.
pub(super) fn decide<'a>(
    item: &'a ItemKey,
    state: &State,
    effects: &[Effect],
    telling: &Telling<'a>,
    full: bool,
    before_state: Option<&State>,
    loaded: LoadedTold,
) -> Option<Tell<'a>> {
    // Answers move forward in time: never one for a moment before the one
    // last told (a command's clock, another instance's, may lag).
    let at = loaded
        .told_at
        .map_or(telling.at, |told_at| telling.at.max(told_at));
    // The last sequence stands even when its answer does not read (a later
    // version wrote it): the next event never reuses a number.
    let before: Option<Told> = loaded
        .answer
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok());
    let reversed = match (&before, full) {
        (Some(told), false) => told.refunds_reversed.saturating_add(reversals(effects)),
        _ => reversals(effects),
    };
    let mut after = Told::of(state, item, at, telling.products, reversed);
    after.consent_rescinded_date = loaded
        .consent_rescinded_date
        .or(before.as_ref().and_then(|t| t.consent_rescinded_date));
    let next_change = changes_at(state, item, at, telling.products);
    let corrected = match (before_state, loaded.told_at) {
        (Some(was), Some(until)) => correction(was, state, item, until, telling.products),
        _ => None,
    };
    if corrected.is_none() && before.as_ref() == Some(&after) {
        return (loaded.changes_at != next_change).then(|| Tell {
            answer: serde_json::to_string(&after).unwrap_or_default(),
            sequence: loaded.sequence,
            told_at: at,
            changes_at: next_change,
            events: Vec::new(),
        });
    }
    let mut sequence = loaded.sequence;
    let mut events = Vec::new();
    let mut push = |kind: &'static str, extra: serde_json::Value| {
        sequence = sequence.saturating_add(1);
        let event_id = event_id(item, sequence);
        let mut data = serde_json::json!({
            "id": event_id,
            "type": kind,
            "sequence": sequence,
            "occurredAt": at,
            "cause": telling.cause,
            "item": item.kind(),
            "answer": &after,
        });
        if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        events.push(EventRow {
            event_id,
            item,
            sequence,
            kind,
            cause: telling.cause,
            occurred_at: at,
            data: data.to_string(),
        });
    };
    // What was said of the past first: the changes now follow from it.
    if let Some(c) = &corrected {
        push(
            event_kinds::ANSWER_CORRECTED,
            serde_json::json!({
                "transactionId": null,
                "correction": {"from": c.from, "to": c.to, "before": c.before, "after": c.after},
            }),
        );
    }
    for change in changes(before.as_ref(), &after) {
        push(
            change.kind,
            serde_json::json!({"transactionId": change.transaction_id}),
        );
    }
    Some(Tell {
        answer: serde_json::to_string(&after).unwrap_or_default(),
        sequence,
        told_at: at,
        changes_at: next_change,
        events,
    })
}

/// An event's stable id: the same item and sequence always name it.
fn event_id(item: &ItemKey, sequence: i64) -> String {
    let text = format!("{}\n{}\n{sequence}", item.kind(), item.id());
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hex: String = digest
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("evt_{hex}")
}
