//! Answers told again with no new fact about the item: when time changes
//! them (a period or a grace period ends and nothing renewed it: the clock
//! job), when the customer's consent is withdrawn (RESCIND_CONSENT names
//! the customer, not an item), and, once, when a database upgraded from a
//! version that told nothing is given its answers without events.

use super::fold_tx::{LedgerTx, LoadedState};
use super::outbox::{tell, OutboxTx, Prior, Telling};
use super::*;
use crate::ledger::{changes_at, State, Told};

/// The cause of an event that time made.
pub const CAUSE_TIME: &str = "time";

/// Items told again per transaction.
const RETELL_BATCH: i64 = 200;
/// Items seeded per transaction.
const SEED_BATCH: i64 = 500;

/// Tells the answer about `item` again as it stands at `telling.at`.
async fn retell(
    tx: &mut impl LedgerTx,
    item: &ItemKey,
    telling: &Telling<'_>,
) -> Result<(), sqlx::Error> {
    // Locks the item on PostgreSQL: a fold of it on another instance
    // waits, and this sees what it wrote.
    if let LoadedState::Readable(state) = tx.load_state(item).await? {
        tell(tx, item, &state, &[], telling, Prior::default()).await?;
    }
    Ok(())
}

/// After a RESCIND_CONSENT: each item of the customer is told again, now
/// with the consent withdrawn (CONSENT_RESCINDED).
pub(super) async fn retell_customer(
    tx: &mut impl LedgerTx,
    app_transaction_id: &str,
    telling: &Telling<'_>,
) -> Result<(), sqlx::Error> {
    // In key order: two transactions locking several items never wait on
    // each other in a cycle.
    for item in tx.customer_items(app_transaction_id).await? {
        retell(tx, &item, telling).await?;
    }
    Ok(())
}

impl Store {
    /// Tells again the answers that time changed by now (each at the moment
    /// it changed); how many items were told.
    pub async fn retell_due(&self) -> Result<usize, StoreError> {
        let now = self.now();
        // A read first: most seconds nothing is due, and SQLite's write lock
        // is the notifications'.
        if on_read!(self, |conn| conn.told_due(now, 1).await)?.is_empty() {
            return Ok(0);
        }
        let products = Arc::clone(&self.products);
        on_write!(self, |tx| {
            let due = tx.told_due(now, RETELL_BATCH).await?;
            for (item, at) in &due {
                let telling = Telling {
                    products: &products,
                    at: *at,
                    cause: CAUSE_TIME,
                };
                retell(tx, item, &telling).await?;
            }
            Ok(due.len())
        })
    }

    /// Gives every item of a database upgraded from a version that told
    /// nothing its current answer, without events: its next change is
    /// then told as a change, not its whole answer as new. A chunk per
    /// transaction; resumes where it stopped. How many items were seeded.
    pub async fn seed_told_answers(&self) -> Result<u64, StoreError> {
        let mut seeded = 0u64;
        loop {
            let now = self.now();
            let products = Arc::clone(&self.products);
            let done = on_write!(self, |tx| {
                let Some(after) = tx.seeding().await? else {
                    return Ok((true, 0));
                };
                let items = tx.items_after(&after, SEED_BATCH).await?;
                for (item, json) in &items {
                    let Ok(state) = serde_json::from_str::<State>(json) else {
                        continue;
                    };
                    let told = Told::of(&state, item, now, &products, 0);
                    let answer = serde_json::to_string(&told).unwrap_or_default();
                    let next = changes_at(&state, item, now, &products);
                    tx.seed_told(item, &answer, now, next).await?;
                }
                let last = items
                    .last()
                    .map(|(item, _)| format!("{}:{}", item.kind(), item.id()));
                let full = items.len() == usize::try_from(SEED_BATCH).unwrap_or(usize::MAX);
                tx.seeded(last.as_deref().filter(|_| full)).await?;
                Ok((!full, items.len() as u64))
            })?;
            seeded = seeded.saturating_add(done.1);
            if done.0 {
                return Ok(seeded);
            }
        }
    }
}
