//! A batch writer's notifications folded together: each statement of a
//! fold is a round trip (on PostgreSQL to the server, on SQLite to its
//! worker thread, behind the requests being verified), and a notification
//! folded alone takes two or more. Here a run of notifications of distinct
//! items is inserted and its items loaded in one round trip, each folded
//! in memory, and the states and what they tell saved in one more.
//!
//! The same as folding them one after another ([`fold::record`]), in the
//! batch's order: a notification whose fold does more than save its item
//! (a refold, refunds or expirations, a customer's consent, a consumption
//! request, a shape this version does not know) or that is a repeat goes
//! the one-by-one way, after the folds before it are saved. When it was
//! new, its writes may be what a later item's load would read (a customer's
//! consent retells all their items), so the rest of the run loads again.

use crate::ledger::{ItemKey, Products, State};

use super::fold::{self, FoldedOnTop, Telling};
use super::fold_tx::{LedgerTx, Loaded, LoadedState};
use super::outbox::Tell;
use super::{NewNotification, Recorded};

/// Records `ns` (each with what its non-renewing products last) in the
/// caller's transaction: the same as [`fold::record`] for each in turn.
pub(super) async fn record_all(
    tx: &mut impl LedgerTx,
    ns: &[(&NewNotification, &Products)],
) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut results = Vec::with_capacity(ns.len());
    let mut rest = ns;
    while !rest.is_empty() {
        let run = distinct_run(rest);
        let (now, later) = rest.split_at(run.max(1).min(rest.len()));
        results.extend(record_run(tx, now).await?);
        rest = later;
    }
    Ok(results)
}

/// How many of the first of `ns` name distinct items and notifications:
/// a run's loads must not miss a write of its own.
fn distinct_run(ns: &[(&NewNotification, &Products)]) -> usize {
    let mut items = std::collections::HashSet::new();
    let mut uuids = std::collections::HashSet::new();
    ns.iter()
        .take_while(|(n, _)| {
            let new_item = n.event.item().is_none_or(|item| items.insert(item));
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

async fn record_run(
    tx: &mut impl LedgerTx,
    ns: &[(&NewNotification, &Products)],
) -> Result<Vec<Recorded>, sqlx::Error> {
    let items: Vec<Option<ItemKey>> = ns.iter().map(|(n, _)| n.event.item()).collect();
    let asks: Vec<(&NewNotification, Option<&ItemKey>)> = ns
        .iter()
        .zip(&items)
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
    // The run's loads still hold: nothing but its own folds, saved in
    // memory, has been written since.
    let mut loads_hold = true;
    for (((n, products), item), (recorded, loaded)) in ns.iter().zip(&items).zip(loaded_all) {
        let telling = fold::telling_of(n, products);
        let mut loaded = loaded;
        if recorded == Recorded::Stored && loads_hold && !fold::more_than_a_fold(n) {
            if let (Some(item), Some(load)) = (item, loaded.take()) {
                match fold_alone(item, load, n, &telling) {
                    Ok((state, tell)) => {
                        saved.push(Saved { item, state, tell });
                        results.push(Recorded::Stored);
                        continue;
                    }
                    Err(load) => loaded = Some(load),
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

/// `n`'s event folded on top of its item's loaded state, with what it
/// tells, when saving the item is all its fold writes; else the load back.
fn fold_alone<'a>(
    item: &'a ItemKey,
    loaded: Loaded,
    n: &NewNotification,
    telling: &Telling<'a>,
) -> Result<(State, Option<Tell<'a>>), Loaded> {
    let Loaded { state, told } = loaded;
    // Folded again from its notifications, the item loads what was told
    // with its save.
    let FoldedOnTop {
        state,
        effects,
        full,
        before,
    } = fold::fold_on_top(state, item, &n.event).map_err(|state| Loaded { state, told: None })?;
    let back = |before: Option<State>, told| Loaded {
        state: before.map_or(LoadedState::Absent, |b| LoadedState::Readable(Box::new(b))),
        told,
    };
    if !effects.is_empty() {
        return Err(back(before, told));
    }
    let Some(loaded_told) = told.and_then(|t| t.for_customer(state.app_transaction_id.as_deref()))
    else {
        // What was told is loaded again with the item's save.
        return Err(back(before, None));
    };
    let tell = super::outbox::decide(
        item,
        &state,
        &effects,
        telling,
        full,
        before.as_ref(),
        loaded_told,
    );
    Ok((state, tell))
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
