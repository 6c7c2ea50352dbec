use super::{apple_object, Environment, PurchasePlatform, Timestamp};

apple_object! {
    /// `JWSAppTransactionDecodedPayload`: the customer's purchase of the app
    /// itself, as signed in `signedAppTransactionInfo`.
    JwsAppTransactionDecodedPayload {
        app_apple_id: i64,
        app_transaction_id: String,
        application_version: String,
        bundle_id: String,
        device_verification: String,
        device_verification_nonce: String,
        original_application_version: String,
        original_platform: PurchasePlatform,
        original_purchase_date: Timestamp,
        preorder_date: Timestamp,
        receipt_creation_date: Timestamp,
        /// The environment of the app transaction (Apple's name for it here).
        receipt_type: Environment,
        signed_date: Timestamp,
    }
}

impl JwsAppTransactionDecodedPayload {
    pub fn environment(&self) -> Option<&Environment> {
        self.receipt_type.as_ref()
    }
}
