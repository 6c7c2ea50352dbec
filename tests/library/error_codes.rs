//! The stable error codes are one set, everywhere: the `ErrorCode` enum
//! the API and the webhook answer with, the README's tables of codes, and
//! every code the lower layers give (the verifier, asking Apple, a receipt,
//! quarantine). A code added on one side without the other fails here.

use std::collections::BTreeSet;
use std::path::Path;

use appstore_ledger::http::ErrorCode;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The codes in the first column of the tables of the README's
/// "Error codes" section.
fn readme_codes() -> BTreeSet<String> {
    let readme = read("README.md");
    let start = readme
        .find("\n## Error codes")
        .expect("an Error codes section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 1)];
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(code, _)| code.to_owned()))
        .collect()
}

/// The quoted codes inside the `fn code(&self)` of a source file.
fn source_codes(path: &str) -> BTreeSet<String> {
    let text = read(path);
    let mut found = BTreeSet::new();
    let mut rest = &text[..];
    while let Some(at) = rest.find("fn code(&self) -> &'static str {") {
        let body = &rest[at..];
        let end = body.find("\n    }\n").unwrap_or(body.len());
        for piece in body[..end].split('"').skip(1).step_by(2) {
            if piece.len() > 3 && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                found.insert(piece.to_owned());
            }
        }
        rest = &body[end..];
    }
    found
}

fn enum_codes() -> BTreeSet<String> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect()
}

#[test]
fn the_readme_lists_exactly_the_codes_the_service_answers_with() {
    let (readme, answered) = (readme_codes(), enum_codes());
    let missing_in_readme: Vec<_> = answered.difference(&readme).collect();
    let unknown_to_service: Vec<_> = readme.difference(&answered).collect();
    assert!(
        missing_in_readme.is_empty() && unknown_to_service.is_empty(),
        "not in the README: {missing_in_readme:?}; in the README only: {unknown_to_service:?}"
    );
}

#[test]
fn every_code_of_the_lower_layers_is_one_the_service_answers_with() {
    let answered = enum_codes();
    for path in [
        "src/jws/error.rs",
        "src/sync/mod.rs",
        "src/appstore_api/error.rs",
        "src/model/receipt.rs",
        "src/ingest.rs",
    ] {
        let codes = source_codes(path);
        assert!(!codes.is_empty(), "{path} gives codes");
        let unknown: Vec<_> = codes.difference(&answered).collect();
        assert!(unknown.is_empty(), "{path}: {unknown:?} are not ErrorCodes");
    }
}
