use super::{
    apple_object, Environment, InAppOwnershipType, OfferDiscountType, OfferType, ProductType,
    RevocationReason, RevocationType, Timestamp, TransactionReason,
};

apple_object! {
    /// `JWSTransactionDecodedPayload`: one transaction, as signed in
    /// `signedTransactionInfo`.
    JwsTransactionDecodedPayload {
        /// Present on every transaction of a period that more than one
        /// transaction represents (seats added mid-period), the first one
        /// included.
        additional_transaction_reason: String,
        app_account_token: String,
        app_transaction_id: String,
        bundle_id: String,
        /// ISO 4217 code of `price`.
        currency: String,
        environment: Environment,
        expires_date: Timestamp,
        in_app_ownership_type: InAppOwnershipType,
        is_upgraded: bool,
        offer_discount_type: OfferDiscountType,
        offer_identifier: String,
        /// ISO 8601 duration of the offer, such as `P1M`.
        offer_period: String,
        offer_type: OfferType,
        /// Seats of a multiseat purchase: invitations, price tiers, seats a
        /// refund revoked.
        /// Kept as sent (`TransactionMultiSeatInfo`: invitationManagement,
        /// priceTiers, revokedSeatQuantity).
        multi_seat_info: serde_json::Value,
        original_purchase_date: Timestamp,
        original_transaction_id: String,
        /// Price in milliunits of `currency`.
        price: i64,
        product_id: String,
        purchase_date: Timestamp,
        /// The number of items, or of seats for a multiseat purchase.
        quantity: i64,
        revocation_date: Timestamp,
        revocation_reason: RevocationReason,
        revocation_type: RevocationType,
        /// Refunded share in thousandths of a percent (100000 = all).
        revocation_percentage: i64,
        signed_date: Timestamp,
        storefront: String,
        storefront_id: String,
        subscription_group_identifier: String,
        transaction_id: String,
        transaction_reason: TransactionReason,
        #[serde(rename = "type")]
        product_type: ProductType,
        web_order_line_item_id: String,
        /// Advanced Commerce API details, kept as sent.
        advanced_commerce_info: serde_json::Value,
    }
}
