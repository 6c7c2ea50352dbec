//! `config.example.toml`, which the README sends operators to, is a
//! configuration the service accepts, and names every section the service
//! reads: a key renamed or added in the code without the example fails
//! here.

use appstore_ledger::config::Settings;

fn example() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_example_configuration_is_accepted_as_written() {
    let settings = Settings::from_toml(&example()).unwrap();
    // What it says is what the service reads, not the built-in defaults.
    assert_eq!(settings.apps.len(), 1);
    assert_eq!(settings.apps[0].bundle_id, "com.example.app");
    assert_eq!(
        settings.apps[0].products[0].duration.as_deref(),
        Some("P90D")
    );
    assert_eq!(settings.api.reports_per_minute, 600);
    assert_eq!(settings.server.max_connections, 1024);
}

#[test]
fn every_section_and_key_of_the_example_is_one_the_service_knows() {
    // Unknown keys are refused at load (deny_unknown_fields), so the
    // example parsing above proves each key exists. The other way round:
    // every top-level section the service reads is in the example.
    let text = example();
    for section in [
        "[server]",
        "[database]",
        "[verification]",
        "[[apps]]",
        "[[apps.products]]",
        "# [apps.api]",
        "[api]",
        "[log]",
        "[check]",
        "[check.tolerance_minutes]",
        "[console]",
        "[appstore_api]",
        "[events]",
        "# [[events.endpoints]]",
    ] {
        assert!(
            text.contains(section),
            "config.example.toml lacks {section}"
        );
    }
}
