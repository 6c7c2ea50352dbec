//! Any bytes as each of Apple's decoded payloads: decoding answers and never
//! panics, and what decodes survives a round trip through its own JSON
//! unchanged (unknown fields included), so nothing Apple sent is lost or
//! altered when a notification is stored and read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

use appstore_ledger::ledger::Event;
use appstore_ledger::model::{
    JwsAppTransactionDecodedPayload, JwsRenewalInfoDecodedPayload, JwsTransactionDecodedPayload,
    ResponseBodyV2DecodedPayload,
};

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(decoded) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let json = serde_json::to_vec(&decoded).expect("a decoded payload serialises");
    let again: T = serde_json::from_slice(&json).expect("its own JSON decodes");
    assert_eq!(decoded, again);
}

fuzz_target!(|data: &[u8]| {
    round_trip::<ResponseBodyV2DecodedPayload>(data);
    round_trip::<JwsTransactionDecodedPayload>(data);
    round_trip::<JwsRenewalInfoDecodedPayload>(data);
    round_trip::<JwsAppTransactionDecodedPayload>(data);
    // The ledger's reading of a stored payload.
    if let Ok(event) = Event::parse(&String::from_utf8_lossy(data)) {
        let _ = event.key();
        let _ = event.item();
    }
});
