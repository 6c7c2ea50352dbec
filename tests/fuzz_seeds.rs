//! Every seed of the ledger's fuzz target is a history Apple could sign:
//! folded as the target folds it, it raises no `APPLE_STATUS_DISAGREES`.
//! (The console's fuzz seeds carry no `data.status`: they are about
//! rendering extreme values, not Apple's word.)

// Tests may panic: that is how they fail.
#![allow(
    unreachable_pub,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

#[path = "../fuzz/src/ledger_events.rs"]
mod ledger_events;

use appstore_ledger::check::{check_item, FindingKind, Tolerances};
use appstore_ledger::ledger::fold_all;

#[test]
fn no_ledger_fuzz_seed_disagrees_with_apple() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/ledger_fold");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 2, "the seeds in {}", dir.display());
    for seed in seeds {
        let events = ledger_events::events(&std::fs::read(&seed).unwrap());
        assert!(!events.is_empty(), "{}", seed.display());
        let with_status = events.iter().filter(|e| e.status().is_some()).count();
        for (item, (state, _)) in fold_all(events) {
            let findings = check_item(&item, &state, ledger_events::START, &Tolerances::default());
            assert!(
                !findings
                    .iter()
                    .any(|f| f.kind == FindingKind::AppleStatusDisagrees),
                "{}: {:?}",
                seed.display(),
                state.apple_status_disagreements
            );
        }
        eprintln!("{}: {with_status} statuses agree", seed.display());
    }
}
