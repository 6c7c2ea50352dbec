//! What `copy-store` moves from one database to another: the tables that
//! hold what came from outside (notifications as received, quarantine,
//! conflicts, the notifications of shapes new to the version that stored
//! them, Apple's delivery attempts and answers, backfill runs, the
//! checker's findings, the console's users and its access log). Everything else is derived and rebuilt on the
//! target. Rows keep their ids, so that pages, orders and quarantine ids
//! answer the same on both sides.
//!
//! A table is read and written in the order of its key, a page per
//! transaction: an interrupted copy leaves a prefix of every table on the
//! target, and the largest key there is where the copy continues.

use ring::digest;

/// How a column is read and written. JSON is text on SQLite and JSONB on
/// PostgreSQL: read back as text, written with the dialect's cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Text,
    Json,
    Bool,
}

use ColumnKind::{Bool, Int, Json, Text};

/// A table `copy-store` moves; its first column is its key.
#[derive(Debug)]
pub struct CopyTable {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnKind)],
    /// Whether the key is generated (PostgreSQL: an identity column, which
    /// takes a given value only when told so, and whose sequence must move
    /// past the copied ids).
    pub generated_key: bool,
}

impl CopyTable {
    pub fn key(&self) -> (&'static str, ColumnKind) {
        self.columns.first().copied().unwrap_or(("id", Int))
    }

    /// The columns, JSON read back as text.
    pub(super) fn select_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, kind)| match kind {
                Json => format!("CAST({name} AS TEXT)"),
                _ => (*name).to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A page after `after` (from the start without it), in key order.
    pub(super) fn select_page(&self, after: bool) -> String {
        let (key, _) = self.key();
        let filter = if after {
            format!("WHERE {key} > $1 ")
        } else {
            String::new()
        };
        let limit = if after { "$2" } else { "$1" };
        format!(
            "SELECT {} FROM {} {filter}ORDER BY {key} LIMIT {limit}",
            self.select_list(),
            self.name
        )
    }

    /// One INSERT of `rows` rows; a row already there (by any unique key)
    /// is left as it is.
    pub(super) fn insert(&self, rows: usize, jsonb: &str, overriding: &str) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        let width = self.columns.len();
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let placeholders: Vec<String> = self
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| {
                        let n = row * width + i + 1;
                        if *kind == Json {
                            format!("${n}{jsonb}")
                        } else {
                            format!("${n}")
                        }
                    })
                    .collect();
                format!("({})", placeholders.join(", "))
            })
            .collect();
        let overriding = if self.generated_key { overriding } else { "" };
        format!(
            "INSERT INTO {} ({}) {overriding} VALUES {} ON CONFLICT DO NOTHING",
            self.name,
            names.join(", "),
            values.join(", ")
        )
    }
}

/// The notifications Apple sent, as received.
const NOTIFICATION_COLUMNS: [(&str, ColumnKind); 13] = [
    ("id", Int),
    ("notification_uuid", Text),
    ("notification_type", Text),
    ("subtype", Text),
    ("signed_date", Int),
    ("received_at", Int),
    ("environment", Text),
    ("bundle_id", Text),
    ("app_apple_id", Int),
    ("original_transaction_id", Text),
    ("transaction_id", Text),
    ("signed_payload", Text),
    ("payload", Json),
];

/// The notification's columns, and why it was kept aside.
// Evaluated while compiling: an index out of bounds fails the build.
#[allow(clippy::indexing_slicing)]
const QUARANTINED_COLUMNS: [(&str, ColumnKind); 15] = {
    let mut columns = [("reason_code", Text); 15];
    let mut i = 0;
    while i < NOTIFICATION_COLUMNS.len() {
        columns[i] = NOTIFICATION_COLUMNS[i];
        i += 1;
    }
    columns[14] = ("reason", Text);
    columns
};

/// Every table `copy-store` moves, in the order it moves them.
pub const COPIED_TABLES: &[CopyTable] = &[
    CopyTable {
        name: "notifications",
        columns: &NOTIFICATION_COLUMNS,
        generated_key: true,
    },
    CopyTable {
        name: "quarantined_notifications",
        columns: &QUARANTINED_COLUMNS,
        generated_key: true,
    },
    CopyTable {
        name: "notification_conflicts",
        columns: &[
            ("id", Int),
            ("notification_uuid", Text),
            ("received_at", Int),
            ("signed_payload", Text),
            ("payload", Json),
        ],
        generated_key: true,
    },
    CopyTable {
        name: "notification_send_attempts",
        columns: &[
            ("notification_uuid", Text),
            ("send_attempts", Json),
            ("fetched_at", Int),
        ],
        generated_key: false,
    },
    CopyTable {
        name: "unknown_shapes",
        columns: &[
            ("notification_uuid", Text),
            ("what", Text),
            ("original_transaction_id", Text),
            ("received_at", Int),
        ],
        generated_key: false,
    },
    CopyTable {
        name: "consents",
        columns: &[
            ("app_transaction_id", Text),
            ("rescinded_date", Int),
            ("notification_uuid", Text),
        ],
        generated_key: false,
    },
    // What was asked, consented, said and sent for Apple's refund
    // decisions: not derived, so it must move.
    CopyTable {
        name: "consumption_requests",
        columns: &[
            ("notification_uuid", Text),
            ("transaction_id", Text),
            ("original_transaction_id", Text),
            ("bundle_id", Text),
            ("environment", Text),
            ("product_id", Text),
            ("product_type", Text),
            ("in_app_ownership_type", Text),
            ("app_account_token", Text),
            ("purchase_date", Int),
            ("expires_date", Int),
            ("reason", Text),
            ("requested_at", Int),
            ("received_at", Int),
            ("deadline", Int),
            ("state", Text),
            ("why", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_error", Text),
            ("send_now_by", Text),
            ("claimed_by", Text),
            ("claimed_until", Int),
            ("sent_body", Text),
            ("sent_at", Int),
            ("apple_status", Int),
            ("closed_at", Int),
        ],
        generated_key: false,
    },
    CopyTable {
        name: "consumption_consents",
        columns: &[
            ("app_account_token", Text),
            ("consumption_data", Bool),
            ("recorded_at", Int),
        ],
        generated_key: false,
    },
    CopyTable {
        name: "consumption_facts",
        columns: &[
            ("transaction_id", Text),
            ("delivery_status", Text),
            ("consumption_percentage", Int),
            ("sample_content_provided", Bool),
            ("refund_preference", Text),
            ("recorded_at", Int),
            ("recorded_by", Text),
        ],
        generated_key: false,
    },
    // What consumers were told, and the events that told them: a move must
    // neither lose them nor tell everything again. Without `txid`: the
    // target's own (its transaction's on PostgreSQL, 0 on SQLite) keeps the
    // copied events in their order, by id, before any new one.
    CopyTable {
        name: "entitlement_events",
        columns: &[
            ("id", Int),
            ("event_id", Text),
            ("kind", Text),
            ("item_id", Text),
            ("sequence", Int),
            ("type", Text),
            ("cause", Text),
            ("occurred_at", Int),
            ("data", Json),
        ],
        generated_key: true,
    },
    CopyTable {
        name: "told_answers",
        columns: &[
            ("item_key", Text),
            ("answer", Json),
            ("sequence", Int),
            ("told_at", Int),
            ("changes_at", Int),
        ],
        generated_key: false,
    },
    // Deliveries, so that a move neither drops what was pending nor sends
    // again what was delivered. Not their claims (instances of the source),
    // nor the endpoints' cursors: those are positions in the source's feed
    // order; an endpoint met first on the target starts at its feed's end,
    // past every copied event.
    CopyTable {
        name: "event_deliveries",
        columns: &[
            ("id", Int),
            ("endpoint", Text),
            ("event_id", Text),
            ("item_key", Text),
            ("sequence", Int),
            ("state", Text),
            ("attempts", Int),
            ("created_at", Int),
            ("next_attempt_at", Int),
            ("first_attempt_at", Int),
            ("last_attempt_at", Int),
            ("last_status", Int),
            ("last_error", Text),
            ("delivered_at", Int),
        ],
        generated_key: true,
    },
    CopyTable {
        name: "apple_evidence",
        columns: &[
            ("evidence_id", Text),
            ("source", Text),
            ("original_transaction_id", Text),
            ("transaction_id", Text),
            ("signed_date", Int),
            ("fetched_at", Int),
            ("bundle_id", Text),
            ("environment", Text),
            ("signed_data", Json),
            ("payload", Json),
        ],
        generated_key: false,
    },
    CopyTable {
        name: "backfill_runs",
        columns: &[
            ("id", Int),
            ("bundle_id", Text),
            ("environment", Text),
            ("start_date", Int),
            ("end_date", Int),
            ("until_given", Int),
            ("only_failures", Bool),
            ("pagination_token", Text),
            ("fetched", Int),
            ("stored", Int),
            ("duplicates", Int),
            ("rejected", Int),
            ("started_at", Int),
            ("finished_at", Int),
        ],
        generated_key: true,
    },
    CopyTable {
        name: "findings",
        columns: &[
            ("id", Int),
            ("kind", Text),
            ("subject", Text),
            ("original_transaction_id", Text),
            ("bundle_id", Text),
            ("environment", Text),
            ("detail", Text),
            ("first_seen", Int),
            ("last_seen", Int),
            ("resolved_at", Int),
            ("resolution", Text),
        ],
        generated_key: true,
    },
    CopyTable {
        name: "console_users",
        columns: &[
            ("name", Text),
            ("role", Text),
            ("password_hash", Text),
            ("created_at", Int),
        ],
        generated_key: false,
    },
    // The audit of who saw which customer: it must outlive a move.
    CopyTable {
        name: "console_access_log",
        columns: &[
            ("id", Int),
            ("at", Int),
            ("user_name", Text),
            ("page", Text),
            ("subject", Text),
        ],
        generated_key: true,
    },
];

/// One value of a copied row, typed by its column (PostgreSQL wants a
/// NULL's type too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyValue {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

/// A row in the order of its table's columns.
pub type CopyRow = Vec<CopyValue>;

/// Where a page starts: the key of the last row read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyKey {
    Int(i64),
    Text(String),
}

impl CopyKey {
    /// The key of a row read from `table`.
    pub fn of(row: &[CopyValue]) -> Option<CopyKey> {
        match row.first()? {
            CopyValue::Int(Some(id)) => Some(CopyKey::Int(*id)),
            CopyValue::Text(Some(key)) => Some(CopyKey::Text(key.clone())),
            _ => None,
        }
    }
}

/// The SHA-256 of a table's rows in key order, over every column but the
/// JSON ones (which PostgreSQL keeps normalised, and which are decoded from
/// the signed payloads that are compared byte for byte).
#[derive(Clone)]
pub struct TableDigest {
    context: digest::Context,
    pub rows: u64,
}

impl Default for TableDigest {
    fn default() -> Self {
        TableDigest {
            context: digest::Context::new(&digest::SHA256),
            rows: 0,
        }
    }
}

impl TableDigest {
    pub fn add(&mut self, table: &CopyTable, row: &[CopyValue]) {
        self.rows += 1;
        for ((_, kind), value) in table.columns.iter().zip(row) {
            if *kind == Json {
                continue;
            }
            match value {
                CopyValue::Int(None) | CopyValue::Text(None) | CopyValue::Bool(None) => {
                    self.context.update(&[0]);
                }
                CopyValue::Int(Some(n)) => {
                    self.context.update(&[1]);
                    self.context.update(&n.to_le_bytes());
                }
                CopyValue::Text(Some(text)) => {
                    self.context.update(&[2]);
                    self.context.update(&(text.len() as u64).to_le_bytes());
                    self.context.update(text.as_bytes());
                }
                CopyValue::Bool(Some(b)) => self.context.update(&[3, u8::from(*b)]),
            }
        }
    }

    /// `sha256:` and the hex digest.
    pub fn finish(self) -> String {
        let hex: String = self
            .context
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256:{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_placeholders_in_order_and_cast_json() {
        let table = &COPIED_TABLES[3];
        assert_eq!(
            table.insert(2, "::jsonb", "OVERRIDING SYSTEM VALUE"),
            "INSERT INTO notification_send_attempts (notification_uuid, send_attempts, fetched_at)  \
             VALUES ($1, $2::jsonb, $3), ($4, $5::jsonb, $6) ON CONFLICT DO NOTHING"
        );
        assert!(COPIED_TABLES[0]
            .insert(1, "", "OVERRIDING SYSTEM VALUE")
            .contains("OVERRIDING SYSTEM VALUE VALUES ($1, $2,"));
        assert_eq!(
            table.select_page(true),
            "SELECT notification_uuid, CAST(send_attempts AS TEXT), fetched_at \
             FROM notification_send_attempts WHERE notification_uuid > $1 ORDER BY notification_uuid LIMIT $2"
        );
    }

    #[test]
    fn a_digest_tells_null_from_empty_and_ignores_json() {
        let table = &COPIED_TABLES[3];
        let digest = |rows: &[CopyRow]| {
            let mut d = TableDigest::default();
            for row in rows {
                d.add(table, row);
            }
            d.finish()
        };
        let row = |key: Option<&str>, json: &str| {
            vec![
                CopyValue::Text(key.map(str::to_owned)),
                CopyValue::Text(Some(json.to_owned())),
                CopyValue::Int(Some(1)),
            ]
        };
        assert_eq!(
            digest(&[row(Some("a"), "{}")]),
            digest(&[row(Some("a"), "{ }")])
        );
        assert_ne!(digest(&[row(Some(""), "{}")]), digest(&[row(None, "{}")]));
        assert_ne!(
            digest(&[row(Some("ab"), "{}"), row(Some("c"), "{}")]),
            digest(&[row(Some("a"), "{}"), row(Some("bc"), "{}")])
        );
    }
}
