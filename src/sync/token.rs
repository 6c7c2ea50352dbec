//! Set App Account Token: tell Apple which account a subscription or
//! purchase belongs to (a purchase made outside the app, or an account
//! moved). Apple signs the token into the item's later transactions; the
//! ledger takes it from there, as from any signed transaction.

use super::reconcile::{candidates, first_that_knows};
use super::SyncError;
use crate::appstore_api::AppStoreApi;
use crate::store::{ItemQuery, Store};

/// Where Apple accepted the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub bundle_id: String,
    pub environment: String,
}

/// Asks Apple to set `app_account_token` (a UUID, in its lower-case key
/// form) on `original_transaction_id`: in the app and environment the
/// ledger knows the item from, else in the first configured one that knows
/// the transaction.
pub async fn set_app_account_token(
    api: &AppStoreApi,
    store: &Store,
    original_transaction_id: &str,
    app_account_token: &str,
) -> Result<TokenSet, SyncError> {
    if api.is_empty() {
        return Err(SyncError::ApiNotConfigured);
    }
    let known = store
        .ledger_items(&ItemQuery::OriginalTransactionId(
            original_transaction_id.to_owned(),
        ))
        .await?;
    let state = known.first().map(|item| &item.state);
    let found = first_that_knows(candidates(api, state), |client| async move {
        client
            .set_app_account_token(original_transaction_id, app_account_token)
            .await?;
        Ok(())
    })
    .await?;
    match found {
        Some((client, ())) => Ok(TokenSet {
            bundle_id: client.bundle_id().to_owned(),
            environment: client.environment().as_str().to_owned(),
        }),
        None => Err(SyncError::UnknownTransaction(
            original_transaction_id.to_owned(),
        )),
    }
}
