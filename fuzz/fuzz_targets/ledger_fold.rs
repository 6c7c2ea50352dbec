//! The ledger's fold over fuzzed event sequences. Every 8 bytes make one
//! notification (type, subtype, item, period, signing offset, flags, status),
//! each with its own UUID. What must hold: no panic, and the fold is a
//! function of the set: reversed or rotated, the same events give the same
//! state and records; applying them one at a time in key order is the fold.
#![no_main]

use libfuzzer_sys::fuzz_target;

use appstore_ledger::ledger::{apply, fold_all, in_order, Event};
use appstore_ledger_fuzz::ledger_events::{events, DAY, START};

fuzz_target!(|data: &[u8]| {
    let events: Vec<Event> = events(data);
    let folded = fold_all(events.clone());
    let mut reversed = events.clone();
    reversed.reverse();
    assert_eq!(fold_all(reversed), folded, "reversed order");
    if !events.is_empty() {
        let mut rotated = events.clone();
        rotated.rotate_left(data.len() % events.len());
        assert_eq!(fold_all(rotated), folded, "rotated order");
    }
    // One at a time, in order, is the same fold.
    let mut states = std::collections::BTreeMap::new();
    for event in in_order(events) {
        let Some(item) = event.item() else { continue };
        let (state, _) = apply(states.remove(&item), &item, &event);
        states.insert(item, state);
    }
    for (item, (state, _)) in &folded {
        assert_eq!(states.get(item), Some(state), "stepwise fold of {item:?}");
        for at in [
            START - 1,
            START + 15 * DAY,
            START + 200 * DAY,
            i64::MAX,
            i64::MIN,
        ] {
            let _ = state.entitled_at(item, at);
        }
        let _ = state.expires_date();
    }
});
