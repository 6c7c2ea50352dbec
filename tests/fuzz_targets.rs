//! The fuzz targets, built and run on their seeds with the tests. Each
//! target's body compiles here as a plain function (a `fuzz_target!` of our
//! own stands in for libFuzzer's), and every seed in `fuzz/seeds/<target>/`
//! goes through it: the targets cannot rot as the crate changes, without
//! nightly or cargo-fuzz, and what they assert holds for their seeds.
//! (`cargo fuzz` still builds them from fuzz/, with libFuzzer.)

// Tests may panic: that is how they fail. The fuzz crate's code is written
// for its own crate, with its own lints.
#![allow(
    unreachable_pub,
    dead_code,
    unused_attributes,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::duplicated_attributes,
    clippy::new_without_default
)]

// The targets say `use libfuzzer_sys::fuzz_target` and
// `use appstore_ledger_fuzz::...`: here both name this crate.
extern crate self as appstore_ledger_fuzz;
extern crate self as libfuzzer_sys;

#[path = "../fuzz/src/lib.rs"]
mod fuzz_lib;
pub use fuzz_lib::*;

/// libFuzzer's macro, made a function `run` of the target's module.
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        pub fn run($data: &[u8]) $body
    };
}

#[path = "../fuzz/fuzz_targets/certificate_chain.rs"]
mod certificate_chain;
#[path = "../fuzz/fuzz_targets/compact_token.rs"]
mod compact_token;
#[path = "../fuzz/fuzz_targets/console_render.rs"]
mod console_render;
#[path = "../fuzz/fuzz_targets/ledger_fold.rs"]
mod ledger_fold;
#[path = "../fuzz/fuzz_targets/payload_decoders.rs"]
mod payload_decoders;
#[path = "../fuzz/fuzz_targets/verify_token.rs"]
mod verify_token;

/// A target's body, as `fuzz_target!` above makes it.
type Target = fn(&[u8]);

#[test]
fn every_fuzz_seed_runs_through_its_target() {
    let targets: [(&str, Target); 6] = [
        ("certificate_chain", certificate_chain::run),
        ("compact_token", compact_token::run),
        ("console_render", console_render::run),
        ("ledger_fold", ledger_fold::run),
        ("payload_decoders", payload_decoders::run),
        ("verify_token", verify_token::run),
    ];
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    // Every target of the fuzz crate is here.
    let mut named: Vec<String> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets"),
    )
    .unwrap()
    .map(|entry| {
        entry
            .unwrap()
            .path()
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    })
    .collect();
    named.sort();
    assert_eq!(
        named,
        targets
            .iter()
            .map(|(name, _)| name.to_string())
            .collect::<Vec<_>>()
    );
    for (name, run) in targets {
        let mut files: Vec<_> = std::fs::read_dir(seeds.join(name))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name} has seeds");
        for file in files {
            run(&std::fs::read(&file).unwrap());
        }
        // And what the fuzzer starts from: nothing at all.
        run(&[]);
    }
}
