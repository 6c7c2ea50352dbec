//! A batch writer's notifications folded together: each statement of a
//! fold is a round trip (on PostgreSQL to the server, on SQLite to its
//! worker thread, behind the requests being verified), and a notification
//! folded alone takes two or more. Here a run of notifications of distinct
//! items is inserted and its items loaded in one round trip, each folded
//! in memory, and the states and what they tell saved in one more.
//!
//! The same as folding them one after another ([`fold::record`]), in the
//! batch's order: a notification whose fold does more than save its item
//! (refunds or expirations, what was told of a customer not yet read) is
//! saved on its own after the folds before it; one that does more than
//! fold its item (a refold, a customer's consent, a consumption request, a
//! shape this version does not know) or is a repeat goes the one-by-one
//! way. When it was new, its writes may be what a later item's load would
//! read (a customer's consent retells all their items), so the rest of the
//! run loads again.

use crate::ledger::{ItemKey, Products, State};

use super::fold::{self, FoldedOnTop, Telling};
use super::fold_tx::{LedgerTx, Loaded};
use super::outbox::{Tell, ToldBefore};
use super::{NewNotification, Recorded};

/// Records `ns` (each with what its non-renewing products last) in the
/// caller's transaction: the same as [`fold::record`] for each in turn.
pub(super) async fn record_all(
    tx: &mut impl LedgerTx,
    ns: &[(&NewNotification, &Products)],
) -> Result<Vec<Recorded>, sqlx::Error> {
    let items: Vec<Option<ItemKey>> = ns.iter().map(|(n, _)| n.event.item()).collect();
    let mut results = Vec::with_capacity(ns.len());
    let (mut ns, mut items) = (ns, items.as_slice());
    while !ns.is_empty() {
        let run = distinct_run(ns, items).clamp(1, ns.len());
        let ((now, later), (now_items, later_items)) =
            (ns.split_at(run), items.split_at(run.min(items.len())));
        results.extend(record_run(tx, now, now_items).await?);
        (ns, items) = (later, later_items);
    }
    Ok(results)
}

/// How many of the first of `ns` (with their `items`) name distinct items
/// and notifications: a run's loads must not miss a write of its own.
fn distinct_run(ns: &[(&NewNotification, &Products)], items: &[Option<ItemKey>]) -> usize {
    let mut seen_items = std::collections::HashSet::new();
    let mut uuids = std::collections::HashSet::new();
    ns.iter()
        .zip(items)
        .take_while(|((n, _), item)| {
            let new_item = item.as_ref().is_none_or(|item| seen_items.insert(item));
            uuids.insert(n.notification_uuid.as_str()) && new_item
        })
        .count()
}

/// A fold saved with the run's others.
struct Saved<'a> {
    item: &'a ItemKey,
    state: State,
    tell: Option<Tell<'a>>,
}

/// What a fold on top of its item's loaded state leaves to write.
// Returned once and taken apart at once: boxing a variant buys nothing.
#[allow(clippy::large_enum_variant)]
enum OnTop<'a> {
    /// Only the item and what it tells: saved with the run's others.
    Alone(Saved<'a>),
    /// Rows its effects make too, or what was told of a customer not read
    /// with the item: saved on its own, as one by one ([`fold::save_on_top`]).
    /// Every row it writes is its item's, which no other load of the run
    /// reads.
    WithMore(FoldedOnTop, Option<ToldBefore>),
    /// The item must be folded again from its notifications.
    Refold(Loaded),
}

async fn record_run(
    tx: &mut impl LedgerTx,
    ns: &[(&NewNotification, &Products)],
    items: &[Option<ItemKey>],
) -> Result<Vec<Recorded>, sqlx::Error> {
    let asks: Vec<(&NewNotification, Option<&ItemKey>)> = ns
        .iter()
        .zip(items)
        .map(|((n, _), item)| (*n, item.as_ref()))
        .collect();
    let loaded_all = tx.record_and_load_all(&asks).await?;
    if loaded_all.len() != ns.len() {
        return Err(sqlx::Error::Protocol(format!(
            "{} notifications recorded, {} answered",
            ns.len(),
            loaded_all.len()
        )));
    }
    let mut results = Vec::with_capacity(ns.len());
    let mut saved: Vec<Saved<'_>> = Vec::new();
    // The run's loads still hold: nothing has been written since that
    // another of its items' loads would read.
    let mut loads_hold = true;
    for (((n, products), item), (recorded, loaded)) in ns.iter().zip(items).zip(loaded_all) {
        let telling = fold::telling_of(n, products);
        let mut loaded = loaded;
        if recorded == Recorded::Stored && loads_hold && !fold::more_than_a_fold(n) {
            if let (Some(item), Some(load)) = (item, loaded.take()) {
                match fold_alone(item, load, n, &telling) {
                    OnTop::Alone(fold) => {
                        saved.push(fold);
                        results.push(Recorded::Stored);
                        continue;
                    }
                    OnTop::WithMore(folded, told) => {
                        save(tx, &mut saved).await?;
                        fold::save_on_top(tx, item, folded, &telling, told).await?;
                        results.push(Recorded::Stored);
                        continue;
                    }
                    OnTop::Refold(load) => loaded = Some(load),
                }
            }
        }
        save(tx, &mut saved).await?;
        if recorded == Recorded::Stored {
            if !loads_hold {
                loaded = match item {
                    Some(item) => Some(Loaded {
                        state: tx.load_state(item).await?,
                        told: None,
                    }),
                    None => None,
                };
            }
            loads_hold = false;
        }
        results.push(fold::after_record(tx, n, products, recorded, loaded).await?);
    }
    save(tx, &mut saved).await?;
    Ok(results)
}

/// `n`'s event folded on top of its item's loaded state, and what is left
/// to write.
fn fold_alone<'a>(
    item: &'a ItemKey,
    loaded: Loaded,
    n: &NewNotification,
    telling: &Telling<'a>,
) -> OnTop<'a> {
    let Loaded { state, told } = loaded;
    let folded = match fold::fold_on_top(state, item, &n.event) {
        Ok(folded) => folded,
        // Folded again from its notifications, the item loads what was
        // told with its save.
        Err(state) => return OnTop::Refold(Loaded { state, told: None }),
    };
    if !folded.effects.is_empty() {
        return OnTop::WithMore(folded, told);
    }
    let customer = folded.state.app_transaction_id.as_deref();
    let Some(loaded_told) = told.and_then(|t| t.for_customer(customer)) else {
        // What was told is loaded with the item's save.
        return OnTop::WithMore(folded, None);
    };
    let tell = super::outbox::decide(
        item,
        &folded.state,
        &folded.effects,
        telling,
        folded.full,
        folded.before.as_ref(),
        loaded_told,
    );
    OnTop::Alone(Saved {
        item,
        state: folded.state,
        tell,
    })
}

/// Saves the run's folds so far, and forgets them.
async fn save(tx: &mut impl LedgerTx, saved: &mut Vec<Saved<'_>>) -> Result<(), sqlx::Error> {
    if saved.is_empty() {
        return Ok(());
    }
    let items: Vec<(&ItemKey, &State, Option<&Tell<'_>>)> = saved
        .iter()
        .map(|s| (s.item, &s.state, s.tell.as_ref()))
        .collect();
    tx.save_states_telling(&items).await?;
    saved.clear();
    Ok(())
}
