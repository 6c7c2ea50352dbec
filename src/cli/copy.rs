//! `copy-store`: every stored notification (and what else came from
//! outside, see store::copy) from one database to another, the ledger
//! rebuilt on the target, and both sides compared at the end.

use clap::Args;

use super::progress::Progress;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::{DatabaseSettings, Settings};
use crate::stop::Stop;
use crate::store::copy::{CopyKey, CopyTable, TableDigest, COPIED_TABLES};
use crate::store::{Rebuilt, Store, StoreError};

/// Rows per page: each page is one transaction on the target.
const PAGE: i64 = 500;

#[derive(Debug, Args)]
pub struct CopyStoreArgs {
    /// The database to copy from, `sqlite://PATH` or `postgres://...`; it must exist.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The database to copy into, created and migrated when needed. Refused
    /// when it already holds something, unless `--continue`.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Continue an interrupted copy into the target it left.
    #[arg(long = "continue")]
    pub resume: bool,
    /// A TOML configuration file, for logging and the database timeouts
    /// (its database URL is not used).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

pub(super) async fn copy_store(settings: Settings, args: CopyStoreArgs) -> u8 {
    match run(&settings.database, &args).await {
        Ok(code) => code,
        Err((code, message)) => {
            eprintln!("error: {message}");
            code
        }
    }
}

type Failed = (u8, String);

fn on(side: &'static str) -> impl Fn(StoreError) -> Failed {
    move |e| (EXIT_FAILED, format!("{side}: {}", e.chain()))
}

async fn run(database: &DatabaseSettings, args: &CopyStoreArgs) -> Result<u8, Failed> {
    for (flag, url) in [("--from", &args.from), ("--to", &args.to)] {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            return Err((
                EXIT_USAGE,
                format!("{flag} must start with sqlite: or postgres:"),
            ));
        }
    }
    if args.from == args.to {
        return Err((EXIT_USAGE, "--from and --to name the same database".into()));
    }
    let with_url = |url: &str| DatabaseSettings {
        url: url.to_owned(),
        ..database.clone()
    };
    let source = Store::connect_existing(&with_url(&args.from))
        .await
        .map_err(on("the source (--from)"))?;
    let target = Store::connect(&with_url(&args.to))
        .await
        .map_err(on("the target (--to)"))?;
    let outcome = copy_and_compare(&source, &target, args.resume).await;
    source.close().await;
    target.close().await;
    outcome
}

async fn copy_and_compare(source: &Store, target: &Store, resume: bool) -> Result<u8, Failed> {
    let mut held = Vec::new();
    for table in COPIED_TABLES {
        let rows = target.table_rows(table).await.map_err(on("the target"))?;
        if rows > 0 {
            held.push(format!("{rows} {}", table.name));
        }
    }
    if !held.is_empty() && !resume {
        return Err((
            EXIT_USAGE,
            format!(
                "the target already holds {}; pass --continue to resume a copy into it",
                held.join(", ")
            ),
        ));
    }

    let stop = crate::stop::on_ctrl_c();
    for table in COPIED_TABLES {
        let complete = copy_table(source, target, table, &stop).await?;
        if !complete {
            eprintln!("copy interrupted in {}: rerun with --continue", table.name);
            return Ok(EXIT_FAILED);
        }
    }

    let mut progress = Progress::new("rebuild", "notifications");
    let rebuilt = target
        .rebuild(|done, total| progress.update(done, total), &stop)
        .await
        .map_err(on("the target"))?;
    progress.finish();
    match rebuilt {
        Rebuilt {
            complete: true,
            notifications,
        } => println!("rebuilt the ledger on the target from {notifications} notifications"),
        Rebuilt {
            complete: false, ..
        } => {
            eprintln!("rebuild interrupted: rerun with --continue (or run rebuild on the target)");
            return Ok(EXIT_FAILED);
        }
    }

    let mut same = true;
    for table in COPIED_TABLES {
        let (source_rows, source_digest) = digest(source, table).await.map_err(on("the source"))?;
        let (target_rows, target_digest) = digest(target, table).await.map_err(on("the target"))?;
        if (source_rows, &source_digest) == (target_rows, &target_digest) {
            println!(
                "{}: {source_rows} rows, {source_digest} on both sides",
                table.name
            );
        } else {
            same = false;
            println!(
                "{}: DIFFERENT: source {source_rows} rows {source_digest}, target {target_rows} rows {target_digest}",
                table.name
            );
        }
    }
    Ok(if same { EXIT_OK } else { EXIT_FAILED })
}

/// Copies what the target lacks of `table`, from after the largest key it
/// has; false when stopped before the end.
async fn copy_table(
    source: &Store,
    target: &Store,
    table: &'static CopyTable,
    stop: &Stop,
) -> Result<bool, Failed> {
    let total = source.table_rows(table).await.map_err(on("the source"))?;
    let mut after = target.last_copied(table).await.map_err(on("the target"))?;
    let mut done = match after {
        Some(_) => target.table_rows(table).await.map_err(on("the target"))?,
        None => 0,
    };
    let (mut copied, mut present) = (0u64, 0u64);
    let mut progress = Progress::new(table.name, "rows");
    progress.update(done, total);
    let complete = loop {
        if stop.is_cancelled() {
            break false;
        }
        let page = source
            .copy_page(table, after.as_ref(), PAGE)
            .await
            .map_err(on("the source"))?;
        let Some(last) = page.last() else {
            break true;
        };
        let next = CopyKey::of(last);
        let new = target
            .copy_rows(table, &page)
            .await
            .map_err(on("the target"))?;
        copied += new;
        present += page.len() as u64 - new;
        done += page.len() as u64;
        progress.update(done, total);
        match next {
            Some(next) => after = Some(next),
            // A row without a key cannot be stored; nothing follows it.
            None => break true,
        }
    };
    progress.finish();
    target.finish_copy(table).await.map_err(on("the target"))?;
    println!(
        "{}: copied {copied} rows{}",
        table.name,
        if present > 0 {
            format!(", {present} were there already")
        } else {
            String::new()
        }
    );
    Ok(complete)
}

/// A table's row count and digest, read a page at a time in key order.
async fn digest(store: &Store, table: &CopyTable) -> Result<(u64, String), StoreError> {
    let mut digest = TableDigest::default();
    let mut after = None;
    loop {
        let page = store.copy_page(table, after.as_ref(), 1_000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = CopyKey::of(last);
        for row in &page {
            digest.add(table, row);
        }
        if after.is_none() {
            break;
        }
    }
    let rows = digest.rows;
    Ok((rows, digest.finish()))
}
