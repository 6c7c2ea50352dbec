//! The statements of one database transaction that the fold needs
//! ([`LedgerTx`]), and what they read and write: a backend provides them
//! (sql/ledger_tx.rs, once for both), the fold (fold.rs, batch.rs) calls
//! them.

use crate::ledger::{ExpirationRecord, ItemKey, RefundRecord, State};

use super::outbox::{LoadedTold, OutboxTx, Tell, ToldBefore};
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
    /// [`LedgerTx::record_and_load`] for several notifications (distinct,
    /// of distinct items), with what was last told of each item always
    /// read ([`Loaded::told`]): in as few round trips as the backend allows.
    async fn record_and_load_all(
        &mut self,
        ns: &[(&NewNotification, Option<&ItemKey>)],
    ) -> Result<Vec<(Recorded, Option<Loaded>)>, sqlx::Error>;
    /// [`LedgerTx::save_state_telling`] for several items (distinct): in
    /// as few statements as the backend allows.
    async fn save_states_telling(
        &mut self,
        items: &[(&ItemKey, &State, Option<&Tell<'_>>)],
    ) -> Result<(), sqlx::Error>;
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
