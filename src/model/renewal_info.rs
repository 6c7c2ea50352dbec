use super::{
    apple_object, AutoRenewStatus, Environment, ExpirationIntent, OfferDiscountType, OfferType,
    PriceIncreaseStatus, Timestamp,
};

apple_object! {
    /// `JWSRenewalInfoDecodedPayload`: what will happen at the next renewal, as
    /// signed in `signedRenewalInfo`.
    JwsRenewalInfoDecodedPayload {
        app_account_token: String,
        app_transaction_id: String,
        auto_renew_product_id: String,
        auto_renew_status: AutoRenewStatus,
        /// ISO 4217 code of `renewal_price`.
        currency: String,
        eligible_win_back_offer_ids: Vec<String>,
        environment: Environment,
        expiration_intent: ExpirationIntent,
        grace_period_expires_date: Timestamp,
        is_in_billing_retry_period: bool,
        offer_discount_type: OfferDiscountType,
        offer_identifier: String,
        offer_period: String,
        offer_type: OfferType,
        original_transaction_id: String,
        price_increase_status: PriceIncreaseStatus,
        product_id: String,
        recent_subscription_start_date: Timestamp,
        renewal_date: Timestamp,
        /// Price in milliunits of `currency`.
        renewal_price: i64,
        /// Seats in the next renewal of a multiseat subscription.
        renewal_quantity: i64,
        signed_date: Timestamp,
        /// Advanced Commerce API details, kept as sent.
        advanced_commerce_info: serde_json::Value,
    }
}
