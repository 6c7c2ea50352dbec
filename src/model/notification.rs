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
