//! Apple's payload types, named as in Apple's JSON.
//!
//! Every field is optional because Apple omits fields freely, and every object
//! keeps the fields it does not know in `unknown_fields`, so a newer payload
//! decodes and re-encodes without loss.

// Values from outside (dates, prices, counts Apple signed or a request
// sent) pass through here: arithmetic is checked or saturating, so that no
// value can overflow into a panic or a wrapped answer; an exception says
// why it cannot overflow.
#![warn(clippy::arithmetic_side_effects)]

mod app_transaction;
mod enums;
mod notification;
mod receipt;
mod renewal_info;
mod timestamp;
mod transaction;

pub use app_transaction::JwsAppTransactionDecodedPayload;
pub use enums::*;
pub use notification::{
    novelty, AppData, Data, ExternalPurchaseToken, ResponseBodyV2DecodedPayload, Summary,
    UnclaimInfo, KNOWN_PAYLOAD_FIELDS,
};
pub use receipt::{receipt_purchases, ReceiptError, ReceiptPurchase};
pub use renewal_info::JwsRenewalInfoDecodedPayload;
pub use timestamp::Timestamp;
pub use transaction::JwsTransactionDecodedPayload;

/// How an `appAccountToken` is kept and compared: it is a UUID, which
/// Swift's `UUID().uuidString` writes in upper case and Apple's JSON in lower
/// case; the same token either way. Lower case, as Apple's JSON has it.
pub fn app_account_token_key(token: &str) -> String {
    token.to_ascii_lowercase()
}

/// An `appAccountToken` a backend sent, in its [`app_account_token_key`]
/// form, if it is a UUID (8-4-4-4-12 hexadecimal digits, either case), as
/// StoreKit's `appAccountToken(_:)` requires; None otherwise.
pub fn parse_app_account_token(raw: &str) -> Option<String> {
    let groups: Vec<&str> = raw.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let hex = groups
        .iter()
        .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()));
    (lengths == [8, 4, 4, 4, 12] && hex).then(|| app_account_token_key(raw))
}

/// Deserializes an optional `appAccountToken` into its [`app_account_token_key`].
pub fn app_account_token_de<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let token: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    Ok(token.as_deref().map(app_account_token_key))
}

/// Declares one of Apple's JSON objects: every field optional and omitted when
/// absent, unknown fields kept.
macro_rules! apple_object {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Fields this version does not know, kept as Apple sent them.
            #[serde(flatten)]
            pub unknown_fields: serde_json::Map<String, serde_json::Value>,
        }
    };
}
pub(crate) use apple_object;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_account_token_is_a_uuid_in_either_case() {
        assert_eq!(
            parse_app_account_token("7E3FB20B-4CDB-47CC-936D-99D65F608138").as_deref(),
            Some("7e3fb20b-4cdb-47cc-936d-99d65f608138")
        );
        for bad in [
            "",
            "acct-1",
            "7e3fb20b4cdb47cc936d99d65f608138",
            "7e3fb20b-4cdb-47cc-936d-99d65f60813g",
            "7e3fb20b-4cdb-47cc-936d-99d65f608138-",
            "{7e3fb20b-4cdb-47cc-936d-99d65f608138}",
        ] {
            assert_eq!(parse_app_account_token(bad), None, "{bad:?}");
        }
    }
}
