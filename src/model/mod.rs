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
    AppData, Data, ExternalPurchaseToken, ResponseBodyV2DecodedPayload, Summary,
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
