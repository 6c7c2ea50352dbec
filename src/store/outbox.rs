//! The fold's outbox: after each fold, the answer about an item is compared
//! with the one consumers were last told, and each change is kept as an
//! entitlement event in the same transaction (see [`crate::ledger::Told`]).
//! Also the consumption request a CONSUMPTION_REQUEST opens, which is
//! likewise kept with the notification.

use crate::ledger::{changes, reversals, Effect, ItemKey, Products, State, Told};

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

/// The statements of the fold's transaction that keep what it tells.
pub(super) trait OutboxTx {
    /// The answer consumers were last told about `item` (JSON), its last
    /// event's sequence, and the moment it was told for.
    async fn load_told(
        &mut self,
        item: &ItemKey,
    ) -> Result<Option<(String, i64, i64)>, sqlx::Error>;
    /// Keeps the answer told about `item` now, and its last sequence.
    async fn tell(
        &mut self,
        item: &ItemKey,
        answer: &str,
        sequence: i64,
        at: i64,
    ) -> Result<(), sqlx::Error>;
    /// Keeps entitlement events in the outbox (once per event id).
    async fn insert_events(&mut self, events: &[EventRow<'_>]) -> Result<(), sqlx::Error>;
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
    full: bool,
) -> Result<(), sqlx::Error> {
    let loaded = tx.load_told(item).await?;
    // Answers move forward in time: never one for a moment before the one
    // last told (a command's clock, another instance's, may lag).
    let at = loaded
        .as_ref()
        .map_or(telling.at, |(_, _, told_at)| telling.at.max(*told_at));
    // The last sequence stands even when its answer does not read (a later
    // version wrote it): the next event never reuses a number.
    let last_sequence = loaded.as_ref().map_or(0, |(_, sequence, _)| *sequence);
    let before: Option<(Told, i64)> =
        loaded.and_then(|(json, sequence, _)| Some((serde_json::from_str(&json).ok()?, sequence)));
    let reversed = match (&before, full) {
        (Some((told, _)), false) => told.refunds_reversed.saturating_add(reversals(effects)),
        _ => reversals(effects),
    };
    let after = Told::of(state, item, at, telling.products, reversed);
    if before.as_ref().is_some_and(|(told, _)| *told == after) {
        return Ok(());
    }
    let mut sequence = last_sequence;
    let mut events = Vec::new();
    for change in changes(before.as_ref().map(|(told, _)| told), &after) {
        sequence = sequence.saturating_add(1);
        let event_id = event_id(item, sequence);
        let data = serde_json::json!({
            "id": event_id,
            "type": change.kind,
            "sequence": sequence,
            "occurredAt": at,
            "cause": telling.cause,
            "item": item.kind(),
            "transactionId": change.transaction_id,
            "answer": &after,
        });
        events.push(EventRow {
            event_id,
            item,
            sequence,
            kind: change.kind,
            cause: telling.cause,
            occurred_at: at,
            data: data.to_string(),
        });
    }
    if !events.is_empty() {
        tx.insert_events(&events).await?;
    }
    let answer = serde_json::to_string(&after).unwrap_or_default();
    tx.tell(item, &answer, sequence, at).await
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
