//! The refund ledger exported: pagination cursors and CSV that a
//! spreadsheet cannot turn into a formula.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use serde_json::Value;

use super::views::RefundView;
use crate::store::RefundEntry;

pub(super) fn encode_cursor(entry: &RefundEntry) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}:{}",
        entry.refund_date, entry.refund.notification_uuid
    ))
}

pub(super) fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (date, uuid) = text.split_once(':')?;
    Some((date.parse().ok()?, uuid.to_owned()))
}

const CSV_COLUMNS: [&str; 21] = [
    "notificationUUID",
    "notificationType",
    "transactionId",
    "originalTransactionId",
    "productId",
    "bundleId",
    "environment",
    "revocationDate",
    "revocationReason",
    "revocationType",
    "revocationPercentage",
    "price",
    "currency",
    "refundedAmount",
    "signedDate",
    "refundDate",
    "reversedAt",
    "reversedByNotificationUUID",
    "subtype",
    "revokedSeatQuantity",
    "source",
];

pub(super) fn to_csv(rows: &[RefundEntry]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to memory cannot fail; a row that somehow did is left out
    // rather than answered half.
    let _ = writer.write_record(CSV_COLUMNS);
    for row in rows {
        let value = serde_json::to_value(RefundView::from(row)).unwrap_or(Value::Null);
        let cells =
            CSV_COLUMNS
                .iter()
                .map(|column| match value.get(column).unwrap_or(&Value::Null) {
                    Value::Null => String::new(),
                    Value::String(s) => defuse(s),
                    other => other.to_string(),
                });
        let _ = writer.write_record(cells);
    }
    writer
        .into_inner()
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
}

/// A leading formula character is defused so that a spreadsheet shows the
/// text instead of running it.
fn defuse(text: &str) -> String {
    // A spreadsheet skips leading tabs, returns and spaces before it reads a
    // formula (OWASP's list: = + - @ TAB CR), so they count as its start.
    let formula = text.starts_with(['\t', '\r', '\n'])
        || text
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .starts_with(['=', '+', '-', '@']);
    if formula {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let entry = RefundEntry {
            refund: crate::ledger::RefundRecord {
                notification_uuid: "u-1".into(),
                notification_type: "REFUND".into(),
                transaction_id: None,
                original_transaction_id: Some("1".into()),
                product_id: None,
                bundle_id: None,
                environment: None,
                revocation_date: Some(5),
                revocation_reason: None,
                revocation_type: None,
                revocation_percentage: None,
                price: None,
                currency: None,
                signed_date: 6,
                subtype: None,
                revoked_seat_quantity: None,
                source: crate::ledger::REFUND_FROM_NOTIFICATION,
            },
            refund_date: 5,
            reversed_at: None,
            reversed_by: None,
        };
        assert_eq!(
            decode_cursor(&encode_cursor(&entry)),
            Some((5, "u-1".into()))
        );
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:y")), None);
    }

    #[test]
    fn a_formula_behind_tabs_returns_or_spaces_is_defused_too() {
        for text in [
            "\t=2+5", "\r=2+5", "\n=2+5", " =2+5", "\t", "\rplain", "-1", "@x",
        ] {
            assert_eq!(defuse(text), format!("'{text}"), "{text:?}");
        }
        for text in ["plain", "a=b", "", " plain", "9.99"] {
            assert_eq!(defuse(text), text, "{text:?}");
        }
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let entry = RefundEntry {
            refund: crate::ledger::RefundRecord {
                notification_uuid: "u-1".into(),
                notification_type: "REFUND".into(),
                transaction_id: Some("a,b".into()),
                original_transaction_id: Some("1".into()),
                product_id: Some("say \"hi\"".into()),
                bundle_id: Some("=SUM(A1)".into()),
                environment: Some("Sandbox".into()),
                revocation_date: Some(5),
                revocation_reason: None,
                revocation_type: None,
                revocation_percentage: None,
                price: Some(9990),
                currency: Some("@cmd".into()),
                signed_date: 6,
                subtype: Some("SEATS".into()),
                revoked_seat_quantity: Some(2),
                source: crate::ledger::REFUND_FROM_NOTIFICATION,
            },
            refund_date: 5,
            reversed_at: None,
            reversed_by: None,
        };
        let csv = to_csv(&[entry]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "u-1,REFUND,\"a,b\",1,\"say \"\"hi\"\"\",'=SUM(A1),Sandbox,5,,,,9990,'@cmd,19980,6,5,,,SEATS,2,NOTIFICATION"
        );
        assert_eq!(lines[2], "");
    }
}
