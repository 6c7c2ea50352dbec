//! The rows an item's fold writes: ledger_items and item_tokens, as parts
//! of a statement (sql/ledger_tx.rs puts one item's in one statement where
//! the backend can write in a WITH).

use sqlx::QueryBuilder;

use crate::ledger::{ItemKey, State};

use super::{ArgExt as _, BindOn, JsonText};

/// Each item's state as ledger_items keeps it (JSON).
pub(super) fn states_json(items: &[(&ItemKey, &State)]) -> Result<Vec<String>, sqlx::Error> {
    items
        .iter()
        .map(|(_, state)| {
            serde_json::to_string(state).map_err(|e| sqlx::Error::Encode(Box::new(e)))
        })
        .collect()
}

/// Every token the items carried, with its item: each finds it (a state
/// only gains tokens, so rows are only added).
pub(super) fn tokens_of<'a>(
    items: &[(&'a ItemKey, &'a State)],
) -> Vec<(&'a ItemKey, &'a State, &'a str)> {
    items
        .iter()
        .flat_map(|(item, state)| {
            state
                .app_account_tokens
                .iter()
                .map(move |token| (*item, *state, token.as_str()))
        })
        .collect()
}

/// The upsert of `items` into ledger_items, `json` their states.
pub(super) fn push_items<DB: BindOn>(
    query: &mut QueryBuilder<DB>,
    items: &[(&ItemKey, &State)],
    json: &[String],
) {
    query.push(
        "INSERT INTO ledger_items (kind, item_id, original_transaction_id, bundle_id, environment,
             product_id, app_account_token, status, expires_date, last_signed_date, app_transaction_id, state) ",
    );
    query.push_values(items.iter().zip(json), |mut row, ((item, state), json)| {
        row.arg(item.kind())
            .arg(item.id())
            .arg(
                state
                    .original_transaction_id
                    .as_deref()
                    .unwrap_or(item.id()),
            )
            .arg(state.bundle_id.as_deref())
            .arg(state.environment.as_deref())
            .arg(state.product_id.as_deref())
            .arg(state.app_account_token.as_deref())
            .arg(state.status.as_str())
            .arg(state.expires_date())
            .arg(state.last_signed_date)
            .arg(state.app_transaction_id.as_deref())
            .arg(JsonText(json));
    });
    query.push(
        " ON CONFLICT (kind, item_id) DO UPDATE SET
             original_transaction_id = excluded.original_transaction_id, bundle_id = excluded.bundle_id,
             environment = excluded.environment, product_id = excluded.product_id,
             app_account_token = excluded.app_account_token, status = excluded.status,
             expires_date = excluded.expires_date, last_signed_date = excluded.last_signed_date,
             app_transaction_id = excluded.app_transaction_id, state = excluded.state",
    );
}

/// The insert of each item's tokens into item_tokens, each once.
pub(super) fn push_tokens<DB: BindOn>(
    query: &mut QueryBuilder<DB>,
    tokens: &[(&ItemKey, &State, &str)],
) {
    query.push(
        "INSERT INTO item_tokens (app_account_token, kind, item_id, original_transaction_id) ",
    );
    query.push_values(tokens, |mut row, (item, state, token)| {
        row.arg(*token).arg(item.kind()).arg(item.id()).arg(
            state
                .original_transaction_id
                .as_deref()
                .unwrap_or(item.id()),
        );
    });
    query.push(" ON CONFLICT (app_account_token, kind, item_id) DO NOTHING");
}

/// `WITH items AS (...), tokens AS (...)`: the items and their tokens
/// written in a statement's WITH (only where [`super::Conn::WRITES_IN_WITH`]),
/// the statement's body to follow.
pub(super) fn push_items_with<DB: BindOn>(
    query: &mut QueryBuilder<DB>,
    items: &[(&ItemKey, &State)],
    tokens: &[(&ItemKey, &State, &str)],
) -> Result<(), sqlx::Error> {
    query.push("WITH items AS (");
    push_items(query, items, &states_json(items)?);
    query.push(") ");
    if !tokens.is_empty() {
        query.push(", tokens AS (");
        push_tokens(query, tokens);
        query.push(") ");
    }
    Ok(())
}
