use super::{
    apple_object, ConsumptionRequestReason, Environment, NotificationType, SubscriptionStatus,
    Subtype, Timestamp,
};

apple_object! {
    /// `ResponseBodyV2DecodedPayload`: the decoded `signedPayload` of an App Store
    /// Server Notification V2.
    ResponseBodyV2DecodedPayload {
        notification_type: NotificationType,
        subtype: Subtype,
        #[serde(rename = "notificationUUID")]
        notification_uuid: String,
        data: Data,
        summary: Summary,
        external_purchase_token: ExternalPurchaseToken,
        app_data: AppData,
        unclaim_info: UnclaimInfo,
        version: String,
        signed_date: Timestamp,
    }
}

apple_object! {
    /// `data`: the app and the signed transaction and renewal of a notification.
    Data {
        app_apple_id: i64,
        bundle_id: String,
        bundle_version: String,
        environment: Environment,
        signed_transaction_info: String,
        signed_renewal_info: String,
        status: SubscriptionStatus,
        consumption_request_reason: ConsumptionRequestReason,
    }
}

apple_object! {
    /// `summary`: the outcome of a renewal-date extension for all subscribers.
    Summary {
        environment: Environment,
        app_apple_id: i64,
        bundle_id: String,
        product_id: String,
        request_identifier: String,
        storefront_country_codes: Vec<String>,
        succeeded_count: i64,
        failed_count: i64,
    }
}

apple_object! {
    /// `externalPurchaseToken`: a token of the External Purchase API.
    ExternalPurchaseToken {
        external_purchase_id: String,
        token_creation_date: Timestamp,
        app_apple_id: i64,
        bundle_id: String,
    }
}

apple_object! {
    /// `appData`: the app and its signed app transaction.
    AppData {
        app_apple_id: i64,
        bundle_id: String,
        environment: Environment,
        signed_app_transaction_info: String,
    }
}

apple_object! {
    /// `unclaimInfo` (UNCLAIM_SEATS): the seat claims the App Store
    /// unclaimed in a group subscription whose invitations the developer
    /// hosts; the customers on those seats lose access through them.
    UnclaimInfo {
        app_apple_id: i64,
        bundle_id: String,
        environment: Environment,
        original_transaction_id: String,
        unclaim_seat_ids: Vec<String>,
    }
}

/// The top-level fields of a notification's payload this version knows;
/// any other is a container it does not (see [`novelty`]).
pub const KNOWN_PAYLOAD_FIELDS: &[&str] = &[
    "notificationType",
    "subtype",
    "notificationUUID",
    "data",
    "summary",
    "externalPurchaseToken",
    "appData",
    "unclaimInfo",
    "version",
    "signedDate",
];

/// What is new to this version in a decoded notification payload: a
/// notificationType or subtype it does not know, or a top-level container
/// it does not read. None when everything is known. Read from the JSON, so
/// that a payload stored by an older version is judged by this one.
pub fn novelty(payload: &serde_json::Value) -> Option<String> {
    let mut new = Vec::new();
    if let Some(kind) = payload.get("notificationType").and_then(|v| v.as_str()) {
        if !NotificationType::KNOWN.contains(&kind) {
            new.push(format!("notificationType {kind}"));
        }
    }
    if let Some(subtype) = payload.get("subtype").and_then(|v| v.as_str()) {
        if !Subtype::KNOWN.contains(&subtype) {
            new.push(format!("subtype {subtype}"));
        }
    }
    if let Some(fields) = payload.as_object() {
        for field in fields.keys() {
            if !KNOWN_PAYLOAD_FIELDS.contains(&field.as_str()) {
                new.push(format!("container {field}"));
            }
        }
    }
    (!new.is_empty()).then(|| new.join(", "))
}

impl ExternalPurchaseToken {
    /// External purchase tokens carry no environment field; Apple marks sandbox
    /// tokens by the prefix of their identifier.
    pub fn environment(&self) -> Option<Environment> {
        self.external_purchase_id.as_deref().map(|id| {
            if id.starts_with("SANDBOX") {
                Environment::Sandbox
            } else {
                Environment::Production
            }
        })
    }
}
