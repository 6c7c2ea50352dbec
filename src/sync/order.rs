//! Look Up Order ID: a customer quotes the order ID of Apple's receipt
//! email; Apple says which purchases it holds, signed.

use super::reconcile::{candidates, expected_identity};
use super::SyncError;
use crate::appstore_api::AppStoreApi;
use crate::ingest::Ingest;
use crate::jws::unverified_signed_date;

/// Apple's order IDs are letters and digits, ten or so of them.
pub fn looks_like_order_id(text: &str) -> bool {
    (6..=32).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The order's purchases, verified, as (originalTransactionId,
/// transactionId), from the first configured app and environment that
/// knows the order; empty when none does.
pub async fn look_up_order(
    api: &AppStoreApi,
    ingest: &Ingest,
    order_id: &str,
) -> Result<Vec<(String, String)>, SyncError> {
    if api.is_empty() {
        return Err(SyncError::ApiNotConfigured);
    }
    for client in candidates(api, None) {
        let answer = client.look_up_order_id(order_id).await?;
        if answer.status != 0 || answer.signed_transactions.is_empty() {
            continue;
        }
        let expected = expected_identity(ingest, client)?;
        let mut purchases = Vec::with_capacity(answer.signed_transactions.len());
        for token in &answer.signed_transactions {
            let at = unverified_signed_date(token)?;
            let decoded = ingest.verifier().verify_transaction(token, &expected, at)?;
            let transaction_id = decoded.transaction_id.clone().unwrap_or_default();
            let original = decoded
                .original_transaction_id
                .clone()
                .unwrap_or_else(|| transaction_id.clone());
            purchases.push((original, transaction_id));
        }
        return Ok(purchases);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_are_short_and_alphanumeric() {
        assert!(looks_like_order_id("MK5TTTVWJH"));
        assert!(!looks_like_order_id("MK5"));
        assert!(!looks_like_order_id("2000000123-456"));
        assert!(!looks_like_order_id("<script>"));
    }
}
