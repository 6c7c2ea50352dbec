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
    /// The envelope's tree, without its nested tokens.
    envelope: Value,
    /// The notification, its nested tokens taken out of its payload.
    notification: VerifiedNotification,
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
            Verified::Notification(mut notification) => {
                // The tokens are replaced by their content, so not copied.
                let payload = &mut notification.payload;
                if let Some(data) = payload.data.as_mut() {
                    data.signed_transaction_info = None;
                    data.signed_renewal_info = None;
                }
                if let Some(app_data) = payload.app_data.as_mut() {
                    app_data.signed_app_transaction_info = None;
                }
                Printed(Kind::Notification(Box::new(Notification {
                    envelope: super::to_value(&notification.payload),
                    notification: *notification,
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
        // A payload's tree is always an object; anything else is written
        // as it is.
        let Value::Object(envelope) = &self.envelope else {
            return self.envelope.serialize(serializer);
        };
        let nested = self.notification.nested_content();
        let mut map = serializer.serialize_map(Some(envelope.len()))?;
        for (name, value) in envelope {
            match value {
                Value::Object(object) => map.serialize_entry(
                    name,
                    &WithNested {
                        name,
                        object,
                        nested: &nested,
                    },
                )?,
                _ => map.serialize_entry(name, value)?,
            }
        }
        map.end()
    }
}

/// A nested token's decoded content.
#[derive(Debug, Clone, Copy)]
pub(super) enum Nested<'a> {
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

/// An object of the envelope with the nested tokens' content that goes in
/// it among its fields, each where its name sorts (`nested` is sorted by
/// field within an object).
struct WithNested<'a> {
    /// The object's name in the envelope.
    name: &'a str,
    object: &'a Map<String, Value>,
    /// (object, field, content), as [`VerifiedNotification::nested_content`].
    nested: &'a [(&'static str, &'static str, Option<Nested<'a>>)],
}

impl Serialize for WithNested<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut nested = self
            .nested
            .iter()
            .filter(|(object, _, _)| *object == self.name)
            .filter_map(|(_, field, content)| content.map(|content| (*field, content)))
            .peekable();
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.object {
            while let Some((field, content)) = nested.next_if(|(field, _)| *field < name.as_str()) {
                map.serialize_entry(field, &content)?;
            }
            map.serialize_entry(name, value)?;
        }
        for (field, content) in nested {
            map.serialize_entry(field, &content)?;
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
        let app_transaction = JwsAppTransactionDecodedPayload::default();
        let nested = [
            ("data", "signedRenewalInfo", Some(Nested::Renewal(&renewal))),
            (
                "data",
                "signedTransactionInfo",
                Some(Nested::Transaction(&transaction)),
            ),
            // Another object's: not written in this one.
            (
                "appData",
                "signedAppTransactionInfo",
                Some(Nested::AppTransaction(&app_transaction)),
            ),
        ];
        let data = |object, nested| WithNested {
            name: "data",
            object,
            nested,
        };
        assert_eq!(
            serde_json::to_string(&data(&object, &nested))
                .ok()
                .as_deref(),
            Some(
                r#"{"bundleId":"com.example","environment":"Sandbox","signedRenewalInfo":{"productId":"p"},"signedTransactionInfo":{"transactionId":"2"},"status":1}"#
            )
        );
        let only_renewal = [
            ("data", "signedRenewalInfo", Some(Nested::Renewal(&renewal))),
            ("data", "signedTransactionInfo", None),
        ];
        let empty = Map::new();
        assert_eq!(
            serde_json::to_string(&data(&empty, &only_renewal))
                .ok()
                .as_deref(),
            Some(r#"{"signedRenewalInfo":{"productId":"p"}}"#)
        );
    }
}
