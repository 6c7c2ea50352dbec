//! `appstore-ledger check`.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;

use super::progress::Progress;
use super::{EXIT_FAILED, EXIT_OK};
use crate::check;
use crate::config::Settings;
use crate::model::Timestamp;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check as of this moment (RFC 3339) instead of now.
    #[arg(long, value_name = "WHEN", value_parser = parse_rfc3339)]
    pub at: Option<Timestamp>,
    /// One JSON object per finding instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Exit status of `check` when it found something.
pub const EXIT_FINDINGS: u8 = 3;

fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).ok_or_else(|| "expected an RFC 3339 date-time".to_owned())
}

/// `check`: scans every subscription and prints the open findings; exit 0
/// with none, 3 with some.
pub(super) async fn check(settings: Settings, at: Option<Timestamp>, json: bool) -> u8 {
    let store = match Store::connect(&settings.database).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {}", e.chain());
            return EXIT_FAILED;
        }
    };
    let at = at.unwrap_or_else(|| store.clock().now());
    let mut progress = Progress::new("checking", "subscriptions and purchases");
    let outcome = check::run(
        &store,
        at,
        &settings.check.tolerance_minutes,
        &settings.products(),
        |done, total| progress.update(done, total),
        &crate::stop::on_ctrl_c(),
    )
    .await;
    progress.finish();
    store.close().await;
    let report = match outcome {
        Ok(Some(report)) => report,
        Ok(None) => {
            eprintln!("check interrupted: no findings printed (a partial check would miss some)");
            return EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("error: {}", e.chain());
            return EXIT_FAILED;
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = if json {
        report.findings.iter().try_for_each(|f| {
            let line = serde_json::json!({
                "kind": f.kind.code(),
                "subject": f.subject,
                "originalTransactionId": f.original_transaction_id,
                "bundleId": f.bundle_id,
                "environment": f.environment,
                "detail": f.detail,
                "at": at.as_millis(),
            });
            writeln!(out, "{line}")
        })
    } else {
        print_table(&mut out, &report.findings)
    };
    if written.and_then(|()| out.flush()).is_err() {
        return EXIT_FAILED;
    }
    eprintln!(
        "checked {} subscriptions and purchases at {at}: {} finding(s)",
        report.items_checked,
        report.findings.len()
    );
    if report.findings.is_empty() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    }
}

fn print_table(out: &mut dyn Write, findings: &[check::Finding]) -> io::Result<()> {
    let rows: Vec<[String; 5]> = findings
        .iter()
        .map(|f| {
            [
                f.kind.code().to_owned(),
                f.subject.clone(),
                f.bundle_id.clone().unwrap_or_default(),
                f.environment.clone().unwrap_or_default(),
                f.detail.clone(),
            ]
        })
        .collect();
    let header = ["KIND", "SUBJECT", "BUNDLE ID", "ENVIRONMENT", "DETAIL"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if i == 4 {
                    cell.clone()
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        writeln!(out, "{}", cells.join("  "))?;
    }
    Ok(())
}
