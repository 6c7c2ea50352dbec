//! A verified token as the `verify` command prints it, written straight from
//! the decoded payloads.
//!
//! [`Verified::to_json`] builds a tree of the whole notification, nested
//! content and all; for a line of output, building, writing and freeing it
//! was half of what `verify --kind auto` spent outside ring. Here only the
//! envelope, small once its nested tokens are taken out, becomes a tree;
//! each nested payload is written from its own fields, in the model's order
//! rather than sorted. Parsed, the output is the same JSON as `to_json`'s.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::{Verified, VerifiedNotification};
use crate::model::{
    JwsAppTransactionDecodedPayload, JwsRenewalInfoDecodedPayload, JwsTransactionDecodedPayload,
};

/// A verified token, ready to serialize.
#[derive(Debug)]
pub struct Printed(Kind);

#[derive(Debug)]
struct Notification {
    /// The envelope without its nested tokens.
    envelope: Value,
    transaction_info: Option<JwsTransactionDecodedPayload>,
    renewal_info: Option<JwsRenewalInfoDecodedPayload>,
    app_transaction_info: Option<JwsAppTransactionDecodedPayload>,
}

#[derive(Debug)]
enum Kind {
    Notification(Box<Notification>),
    Transaction(Box<JwsTransactionDecodedPayload>),
    RenewalInfo(Box<JwsRenewalInfoDecodedPayload>),
    AppTransaction(Box<JwsAppTransactionDecodedPayload>),
}

impl Verified {
    /// As [`Verified::to_json`], to serialize: the same JSON, written from
    /// the decoded payloads (see the module's comment), without copying a
    /// notification's nested tokens.
    pub fn into_printed(self) -> Printed {
        match self {
            Verified::Notification(notification) => {
                let VerifiedNotification {
                    mut payload,
                    transaction_info,
                    renewal_info,
                    app_transaction_info,
                    ..
                } = *notification;
                // The tokens are replaced by their content, so not copied.
                if let Some(data) = payload.data.as_mut() {
                    data.signed_transaction_info = None;
                    data.signed_renewal_info = None;
                }
                if let Some(app_data) = payload.app_data.as_mut() {
                    app_data.signed_app_transaction_info = None;
                }
                Printed(Kind::Notification(Box::new(Notification {
                    envelope: super::to_value(&payload),
                    transaction_info,
                    renewal_info,
                    app_transaction_info,
                })))
            }
            Verified::Transaction(t) => Printed(Kind::Transaction(t)),
            Verified::RenewalInfo(r) => Printed(Kind::RenewalInfo(r)),
            Verified::AppTransaction(a) => Printed(Kind::AppTransaction(a)),
        }
    }
}

impl Serialize for Printed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Kind::Notification(notification) => notification.serialize(serializer),
            Kind::Transaction(t) => t.serialize(serializer),
            Kind::RenewalInfo(r) => r.serialize(serializer),
            Kind::AppTransaction(a) => a.serialize(serializer),
        }
    }
}

impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Notification {
            envelope,
            transaction_info,
            renewal_info,
            app_transaction_info,
        } = self;
        match envelope {
            Value::Object(envelope) => {
                // Sorted by name, as the envelope's own fields are.
                let data = [
                    (
                        "signedRenewalInfo",
                        renewal_info.as_ref().map(Nested::Renewal),
                    ),
                    (
                        "signedTransactionInfo",
                        transaction_info.as_ref().map(Nested::Transaction),
                    ),
                ];
                let app_data = [(
                    "signedAppTransactionInfo",
                    app_transaction_info.as_ref().map(Nested::AppTransaction),
                )];
                let mut map = serializer.serialize_map(Some(envelope.len()))?;
                for (name, value) in envelope {
                    match (name.as_str(), value) {
                        ("data", Value::Object(object)) => {
                            map.serialize_entry(name, &WithNested(object, &data))?
                        }
                        ("appData", Value::Object(object)) => {
                            map.serialize_entry(name, &WithNested(object, &app_data))?
                        }
                        _ => map.serialize_entry(name, value)?,
                    }
                }
                map.end()
            }
            // A payload's tree is always an object; anything else is
            // written as it is.
            other => other.serialize(serializer),
        }
    }
}

/// A nested token's decoded content.
#[derive(Debug, Clone, Copy)]
enum Nested<'a> {
    Transaction(&'a JwsTransactionDecodedPayload),
    Renewal(&'a JwsRenewalInfoDecodedPayload),
    AppTransaction(&'a JwsAppTransactionDecodedPayload),
}

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Nested::Transaction(t) => t.serialize(serializer),
            Nested::Renewal(r) => r.serialize(serializer),
            Nested::AppTransaction(a) => a.serialize(serializer),
        }
    }
}

/// An object of the envelope with its nested tokens' content among its
/// fields, each where its name sorts (`nested` is sorted by name).
struct WithNested<'a, const N: usize>(
    &'a Map<String, Value>,
    &'a [(&'static str, Option<Nested<'a>>); N],
);

impl<const N: usize> Serialize for WithNested<'_, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let WithNested(object, nested) = self;
        let mut nested = nested
            .iter()
            .filter_map(|(name, content)| content.map(|content| (*name, content)))
            .peekable();
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in object.iter() {
            while let Some((nested_name, content)) =
                nested.next_if(|(nested_name, _)| *nested_name < name.as_str())
            {
                map.serialize_entry(nested_name, &content)?;
            }
            map.serialize_entry(name, value)?;
        }
        for (nested_name, content) in nested {
            map.serialize_entry(nested_name, &content)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_content_takes_its_sorted_place_among_the_fields() {
        let object: Map<String, Value> = serde_json::from_str(
            r#"{"bundleId":"com.example","environment":"Sandbox","status":1}"#,
        )
        .unwrap_or_default();
        let renewal = JwsRenewalInfoDecodedPayload {
            product_id: Some("p".into()),
            ..Default::default()
        };
        let transaction = JwsTransactionDecodedPayload {
            transaction_id: Some("2".into()),
            ..Default::default()
        };
        let nested = [
            ("signedRenewalInfo", Some(Nested::Renewal(&renewal))),
            (
                "signedTransactionInfo",
                Some(Nested::Transaction(&transaction)),
            ),
        ];
        assert_eq!(
            serde_json::to_string(&WithNested(&object, &nested))
                .ok()
                .as_deref(),
            Some(
                r#"{"bundleId":"com.example","environment":"Sandbox","signedRenewalInfo":{"productId":"p"},"signedTransactionInfo":{"transactionId":"2"},"status":1}"#
            )
        );
        let only_renewal = [
            ("signedRenewalInfo", Some(Nested::Renewal(&renewal))),
            ("signedTransactionInfo", None),
        ];
        let empty = Map::new();
        assert_eq!(
            serde_json::to_string(&WithNested(&empty, &only_renewal))
                .ok()
                .as_deref(),
            Some(r#"{"signedRenewalInfo":{"productId":"p"}}"#)
        );
    }
}
