//! Maintenance commands: `reprocess --quarantined`, `rebuild`, `migrate` and
//! `backup`.

use super::progress::Progress;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Settings;
use crate::ingest::{Ingest, Ingested};
use crate::jws::Verifier;
use crate::model::Timestamp;
use crate::store::{Rebuilt, Store, StoreError};

/// `reprocess --quarantined`: each quarantined notification is verified again
/// (at the time it was received, when its chain was checked) and released if a
/// configured app now expects it. Safe to interrupt: each release is one
/// transaction, and a rerun continues with what is left.
pub(super) async fn reprocess_quarantined(settings: Settings) -> u8 {
    let prepared = async {
        let anchors = settings.trust_anchors().map_err(|e| e.to_string())?;
        let store = Store::connect(&settings.database)
            .await
            .map_err(|e| e.chain())?
            .with_products(std::sync::Arc::new(settings.products()));
        Ok::<_, String>((Ingest::new(Verifier::new(anchors), &settings.apps), store))
    };
    let (ingest, store) = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let total = store.counts().await.map(|c| c.quarantined).unwrap_or(0);
    let total = u64::try_from(total).unwrap_or(0);
    let mut progress = Progress::new("reprocess", "checked");
    let (mut seen, mut released, mut kept, mut failed) = (0u64, 0u64, 0u64, 0u64);
    let mut after = 0;
    let outcome = loop {
        let page = match store.quarantined(after, 500).await {
            Ok(page) if page.is_empty() => break Ok(()),
            Ok(page) => page,
            Err(e) => break Err(e.chain()),
        };
        for q in page {
            after = q.id;
            seen += 1;
            let at = Timestamp::from_millis(q.received_at);
            match ingest.classify(&q.signed_payload, at, at) {
                Ok(Ingested::Accepted(n)) => match store.release_quarantined(q.id, n).await {
                    Ok(_) => released += 1,
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: not released: {}", q.notification_uuid, e.chain());
                    }
                },
                Ok(Ingested::Quarantined(_, reason)) => {
                    kept += 1;
                    tracing::debug!(notification_uuid = %q.notification_uuid, code = reason.code(), "still unexpected");
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("{}: {}: {e}", q.notification_uuid, e.code());
                }
            }
        }
        progress.update(seen, total);
    };
    progress.finish();
    store.close().await;
    println!("released {released}, still quarantined {kept}, failed {failed}");
    match outcome {
        Ok(()) if failed == 0 => EXIT_OK,
        Ok(()) => EXIT_FAILED,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

/// `rebuild`: the ledger folded again from every stored notification. Safe
/// to run beside the service and to interrupt: each chunk of subscriptions is
/// replaced in one transaction, and a rerun redoes them all.
pub(super) async fn rebuild(settings: Settings) -> u8 {
    let store = match Store::connect(&settings.database).await {
        Ok(store) => store.with_products(std::sync::Arc::new(settings.products())),
        Err(e) => {
            eprintln!("error: {}", e.chain());
            return EXIT_FAILED;
        }
    };
    let started = std::time::Instant::now();
    let mut progress = Progress::new("rebuild", "notifications");
    let outcome = store
        .rebuild(
            |done, total| progress.update(done, total),
            &crate::stop::on_ctrl_c(),
        )
        .await;
    progress.finish();
    store.close().await;
    match outcome {
        Ok(Rebuilt {
            notifications,
            complete: false,
        }) => {
            eprintln!(
                "rebuild interrupted after {notifications} notifications; every chunk done is consistent, rerun to finish"
            );
            EXIT_FAILED
        }
        Ok(Rebuilt {
            notifications: done,
            complete: true,
        }) => {
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "rebuilt the ledger from {done} notifications in {seconds:.1} s ({:.0}/s)",
                done as f64 / seconds.max(1e-9)
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {}", e.chain());
            EXIT_FAILED
        }
    }
}

/// Says what failed; exit 2 for a database URL the command cannot use, 1
/// for a database that failed.
fn failed(e: &StoreError) -> u8 {
    eprintln!("error: {}", e.chain());
    match e {
        StoreError::UnsupportedUrl(_) => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

/// `backup --to FILE`: an online, consistent copy of the SQLite database.
pub(super) async fn backup(settings: Settings, to: std::path::PathBuf) -> u8 {
    let started = std::time::Instant::now();
    match Store::backup(&settings.database, &to).await {
        Ok(bytes) => {
            println!(
                "backed up to {} ({bytes} bytes) in {:.1} s",
                to.display(),
                started.elapsed().as_secs_f64()
            );
            EXIT_OK
        }
        Err(e) => failed(&e),
    }
}

/// `migrate`: applies what is missing of the schema, as `serve` does when
/// it starts, for teams that migrate as a deploy step. Prints what this run
/// applied (another instance may apply at the same moment: one applies, the
/// others find nothing to do).
pub(super) async fn migrate(settings: Settings) -> u8 {
    match Store::migrate(&settings.database).await {
        Ok(migrated) => {
            let version = migrated
                .version
                .map_or_else(|| "none".to_owned(), |v| v.to_string());
            if migrated.applied.is_empty() {
                println!(
                    "{}: nothing to apply, at version {version}",
                    migrated.backend
                );
            } else {
                let applied: Vec<String> = migrated.applied.iter().map(i64::to_string).collect();
                println!(
                    "{}: applied {} ({}), now at version {version}",
                    migrated.backend,
                    migrated.applied.len(),
                    applied.join(", ")
                );
            }
            EXIT_OK
        }
        Err(e) => failed(&e),
    }
}
