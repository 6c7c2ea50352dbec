//! What the fuzz targets share: the tests' Apple-shaped PKI (so that a target
//! can sign what the fuzzer makes and reach past the signature check), and a
//! length-prefixed split of the input into parts.

use std::sync::OnceLock;

#[allow(dead_code)]
#[path = "../../tests/common/pki.rs"]
pub mod pki;

pub mod ledger_events;

use appstore_ledger::model::Timestamp;

pub use pki::TestPki;

/// One PKI for the whole run: generating keys per input would drown the
/// fuzzer's time in key generation.
pub fn test_pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(TestPki::new)
}

/// Inside every validity period of the test PKI.
pub const AT: Timestamp = pki::AT;

/// Splits `data` into at most `n` parts, each but the last preceded by its
/// length as two big-endian bytes; the last takes the rest. Unlike cutting at
/// fixed fractions, every part can have any length, so a whole certificate
/// can sit in any position.
pub fn split_prefixed(mut data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    while parts.len() + 1 < n {
        let Some((len, rest)) = data.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (part, rest) = rest.split_at(len);
        parts.push(part);
        data = rest;
    }
    parts.push(data);
    parts
}

/// The inverse of [`split_prefixed`], for writing seeds.
pub fn join_prefixed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let Some((last, init)) = parts.split_last() else {
        return out;
    };
    for part in init {
        let len = u16::try_from(part.len()).expect("a part of at most 65535 bytes");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(last);
    out
}
