//! Commands that ask Apple: `backfill`, `reconcile`, `api-check`,
//! `set-app-account-token`, `extend-renewal` and `extend-renewal-all`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args};

use super::progress::Progress;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::appstore_api::{AppStoreApi, Client, RetryPolicy};
use crate::config::Settings;
use crate::ingest::Ingest;
use crate::jws::Verifier;
use crate::model::{Environment, Timestamp};
use crate::store::Store;
use crate::sync::{self, BackfillWindow};

/// A moment: milliseconds since the epoch, or RFC 3339.
pub(super) fn moment(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .or_else(|| Timestamp::parse_rfc3339(text).map(Timestamp::as_millis))
        .ok_or_else(|| format!("{text:?} is neither milliseconds nor an RFC 3339 time"))
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The app, by its bundle id: one of `[[apps]]`, with an `[apps.api]` key.
    #[arg(long, value_name = "BUNDLE_ID")]
    pub bundle_id: String,
    /// Production or Sandbox.
    #[arg(long)]
    pub environment: String,
    /// From (inclusive): milliseconds or RFC 3339. Apple keeps 180 days.
    #[arg(long, value_parser = moment)]
    pub since: i64,
    /// Until (exclusive); now when left out.
    #[arg(long, value_parser = moment)]
    pub until: Option<i64>,
    /// Only the notifications Apple failed to deliver to us.
    #[arg(long)]
    pub only_failures: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["original_transaction_id", "open_findings"])))]
pub struct ReconcileArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// One subscription.
    #[arg(long, value_name = "ID")]
    pub original_transaction_id: Option<String>,
    /// Every subscription with an open finding Apple's answer can settle.
    #[arg(long)]
    pub open_findings: bool,
}

#[derive(Debug, Args)]
pub struct ApiCheckArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The app, by its bundle id: one of `[[apps]]`, with an `[apps.api]` key.
    #[arg(long, value_name = "BUNDLE_ID")]
    pub bundle_id: String,
    /// Production or Sandbox.
    #[arg(long)]
    pub environment: String,
    /// How long to wait for the test notification to arrive.
    #[arg(long, default_value_t = 60)]
    pub wait_seconds: u64,
}

#[derive(Debug, Args)]
pub struct SetAppAccountTokenArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The subscription (or purchase) whose account changes.
    #[arg(long, value_name = "ID")]
    pub original_transaction_id: String,
    /// The account's appAccountToken: a UUID, either case.
    #[arg(long, value_name = "UUID")]
    pub token: String,
}

#[derive(Debug, Args)]
pub struct RefundsBackfillArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// One subscription; every subscription the ledger knows when absent.
    #[arg(long, value_name = "ID")]
    pub original_transaction_id: Option<String>,
    /// Only subscriptions Apple signed something about since then
    /// (milliseconds or RFC 3339).
    #[arg(long, value_parser = moment)]
    pub since: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ExtendRenewalArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The subscription whose renewal date moves.
    #[arg(long, value_name = "ID")]
    pub original_transaction_id: String,
    /// Days to add: 1 to 90.
    #[arg(long)]
    pub days: i64,
    /// UNDECLARED, CUSTOMER_SATISFACTION, OTHER or SERVICE_ISSUE_OR_OUTAGE
    /// (or Apple's code, 0 to 3).
    #[arg(long, value_name = "CODE")]
    pub reason: String,
    /// Apple extends once per identifier: give the one printed before to
    /// ask again without extending twice (a new UUID when absent).
    #[arg(long, value_name = "ID")]
    pub request_identifier: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExtendRenewalAllArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Every active subscriber of this product.
    #[arg(long, value_name = "PRODUCT_ID")]
    pub product: String,
    /// Days to add: 1 to 90.
    #[arg(long)]
    pub days: i64,
    /// UNDECLARED, CUSTOMER_SATISFACTION, OTHER or SERVICE_ISSUE_OR_OUTAGE
    /// (or Apple's code, 0 to 3).
    #[arg(long, value_name = "CODE")]
    pub reason: String,
    /// Only these storefronts (ISO 3166-1 alpha-3, e.g. USA); all when none.
    #[arg(long = "storefront", value_name = "CODE")]
    pub storefronts: Vec<String>,
    /// The app, when several are configured.
    #[arg(long)]
    pub bundle_id: Option<String>,
    /// Production (the default) or Sandbox.
    #[arg(long)]
    pub environment: Option<String>,
    /// The request's identifier (a new UUID when absent): Apple takes one
    /// mass extension per identifier.
    #[arg(long, value_name = "ID")]
    pub request_identifier: Option<String>,
    /// Ask nothing: follow the request `--request-identifier` names, made
    /// before, until Apple completes it.
    #[arg(long, requires = "request_identifier")]
    pub status_only: bool,
    /// Seconds between status questions until Apple completes the request.
    #[arg(long, default_value_t = 60)]
    pub poll_seconds: u64,
    /// Ask, print the request identifier, and do not wait for completion.
    #[arg(long)]
    pub no_wait: bool,
}

/// What the commands share: the clients, the webhook's verifier, the store.
struct Context {
    api: Arc<AppStoreApi>,
    ingest: Ingest,
    store: Store,
}

async fn context(settings: &Settings) -> Result<Context, (u8, String)> {
    let usage = |e: String| (EXIT_USAGE, e);
    let anchors = settings.trust_anchors().map_err(|e| usage(e.to_string()))?;
    let clock = crate::clock::system();
    let api = AppStoreApi::from_settings(&settings.apps, RetryPolicy::default(), &clock)
        .map_err(|e| usage(e.to_string()))?;
    if api.is_empty() {
        return Err(usage(
            "no app has [apps.api]: configure the App Store Server API key first".into(),
        ));
    }
    let store = Store::connect(&settings.database)
        .await
        .map_err(|e| (EXIT_FAILED, e.chain()))?
        .with_products(std::sync::Arc::new(settings.products()));
    Ok(Context {
        api: Arc::new(api),
        ingest: Ingest::new(Verifier::new(anchors), &settings.apps),
        store,
    })
}

/// The client of the app and environment asked for, or a usage error.
async fn client<'a>(cx: &'a Context, bundle_id: &str, environment: &str) -> Result<&'a Client, u8> {
    let environment = Environment::from_raw(environment);
    match cx.api.client(bundle_id, &environment) {
        Some(client) => Ok(client),
        None => {
            eprintln!("error: no [apps.api] for {bundle_id} in {environment}: configure the app with this environment and an API key");
            cx.store.close().await;
            Err(EXIT_USAGE)
        }
    }
}

macro_rules! prepared {
    ($settings:expr) => {
        match context(&$settings).await {
            Ok(context) => context,
            Err((code, e)) => {
                eprintln!("error: {e}");
                return code;
            }
        }
    };
}

/// `backfill`: last line `fetched N, stored S, duplicates D, rejected R`;
/// exit 0 when every page was read.
pub(super) async fn backfill(settings: Settings, args: BackfillArgs) -> u8 {
    let cx = prepared!(settings);
    let client = match client(&cx, &args.bundle_id, &args.environment).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let window = BackfillWindow {
        since: args.since,
        until: args.until,
        only_failures: args.only_failures,
    };
    let mut progress = Progress::new("backfill", "notifications");
    let outcome = sync::backfill(
        client,
        &cx.ingest,
        &cx.store,
        &window,
        |report| progress.count(report.fetched.unsigned_abs()),
        &crate::stop::on_ctrl_c(),
    )
    .await;
    progress.finish();
    cx.store.close().await;
    match outcome {
        Ok(report) => {
            if !report.complete {
                eprintln!("backfill interrupted: run the same command again to continue");
            }
            println!("{report}");
            if report.complete {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => {
            eprintln!("error: {}: {e}", e.code());
            EXIT_FAILED
        }
    }
}

/// `reconcile`: one line per subscription, then a summary.
pub(super) async fn reconcile(settings: Settings, args: ReconcileArgs) -> u8 {
    let cx = prepared!(settings);
    let tolerances = settings.check.tolerance_minutes;
    let results = match &args.original_transaction_id {
        Some(otid) => Ok(vec![sync::reconcile(
            &cx.api,
            &cx.ingest,
            &cx.store,
            otid,
            &tolerances,
        )
        .await
        .map_err(|e| (otid.clone(), e))]),
        None => sync::reconcile_open_findings(&cx.api, &cx.ingest, &cx.store, &tolerances).await,
    };
    cx.store.close().await;
    let results = match results {
        Ok(results) => results,
        Err(e) => {
            eprintln!("error: {}: {e}", e.code());
            return EXIT_FAILED;
        }
    };
    let (mut resolved, mut failed) = (0usize, 0usize);
    for result in &results {
        match result {
            Ok(r) => {
                resolved += r.resolved.len();
                let settled: Vec<String> = r
                    .resolved
                    .iter()
                    .map(|(kind, how)| format!("{kind} {how}"))
                    .collect();
                println!(
                    "{}: {} new answers from Apple; resolved [{}]; still open [{}]",
                    r.original_transaction_id,
                    r.evidence_stored,
                    settled.join(", "),
                    r.still_open.join(", ")
                );
            }
            Err((otid, e)) => {
                failed += 1;
                eprintln!("{otid}: {}: {e}", e.code());
            }
        }
    }
    println!(
        "reconciled {}, findings resolved {resolved}, failed {failed}",
        results.len() - failed
    );
    if failed == 0 {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// `api-check`: exit 0 when the test notification arrived here.
pub(super) async fn api_check(settings: Settings, args: ApiCheckArgs) -> u8 {
    let cx = prepared!(settings);
    let client = match client(&cx, &args.bundle_id, &args.environment).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    println!(
        "asking Apple ({} {}) for a test notification...",
        client.bundle_id(),
        client.environment()
    );
    let outcome = sync::api_check(
        client,
        &cx.ingest,
        &cx.store,
        Duration::from_secs(args.wait_seconds),
        Duration::from_secs(2).min(Duration::from_secs(args.wait_seconds.max(1))),
    )
    .await;
    cx.store.close().await;
    match outcome {
        Ok(report) => {
            println!("authenticated: key, issuer and bundle id accepted by Apple");
            for line in report.diagnosis() {
                println!("{line}");
            }
            if report.arrived {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => {
            println!("{}: {e}", e.code());
            EXIT_FAILED
        }
    }
}

/// `set-app-account-token`: Apple's answer, in one line. The ledger learns
/// the new token from Apple's next signed transaction, like any other fact.
pub(super) async fn set_app_account_token(settings: Settings, args: SetAppAccountTokenArgs) -> u8 {
    let Some(token) = crate::model::parse_app_account_token(&args.token) else {
        eprintln!(
            "error: INVALID_APP_ACCOUNT_TOKEN: --token {:?} is not a UUID",
            args.token
        );
        return EXIT_USAGE;
    };
    let cx = prepared!(settings);
    let outcome =
        sync::set_app_account_token(&cx.api, &cx.store, &args.original_transaction_id, &token)
            .await;
    cx.store.close().await;
    match outcome {
        Ok(set) => {
            println!(
                "Apple set appAccountToken {token} on {} ({} {}); its next signed transaction carries it",
                args.original_transaction_id, set.bundle_id, set.environment
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {}: {e}", e.code());
            EXIT_FAILED
        }
    }
}

/// `refunds-backfill`: last line `subscriptions N, refunded R, new S`; exit
/// 0 when every subscription was asked.
pub(super) async fn refunds_backfill(settings: Settings, args: RefundsBackfillArgs) -> u8 {
    let cx = prepared!(settings);
    let mut progress = Progress::new("refunds-backfill", "subscriptions");
    let outcome = sync::refunds_backfill(
        &cx.api,
        &cx.ingest,
        &cx.store,
        args.original_transaction_id.as_deref(),
        args.since,
        |report| progress.count(report.subscriptions),
    )
    .await;
    cx.store.close().await;
    match outcome {
        Ok(report) => {
            println!(
                "subscriptions {}, refunded {}, new {}",
                report.subscriptions, report.refunded, report.stored
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {}: {e}", e.code());
            EXIT_FAILED
        }
    }
}

/// The extension asked for, or exit 2 with why Apple would refuse it.
fn extension(
    days: i64,
    reason: &str,
    request_identifier: Option<&str>,
) -> Result<sync::Extension, u8> {
    sync::Extension::new(days, reason, request_identifier).map_err(|e| {
        eprintln!("error: {}: {e}", e.code());
        EXIT_USAGE
    })
}

/// `extend-renewal`: Apple's answer in one line (exit 0 when Apple
/// extended it). RENEWAL_EXTENDED then moves the ledger's dates.
pub(super) async fn extend_renewal(settings: Settings, args: ExtendRenewalArgs) -> u8 {
    let extension = match extension(args.days, &args.reason, args.request_identifier.as_deref()) {
        Ok(extension) => extension,
        Err(code) => return code,
    };
    let cx = prepared!(settings);
    let outcome = sync::extend_renewal(
        &cx.api,
        &cx.store,
        &args.original_transaction_id,
        &extension,
    )
    .await;
    cx.store.close().await;
    match outcome {
        Ok(extended) if extended.success => {
            println!(
                "Apple extended {} by {} days ({}), requestIdentifier {} ({} {}); renews at {}",
                args.original_transaction_id,
                extension.days,
                extension.reason.name(),
                extension.request_identifier,
                extended.bundle_id,
                extended.environment,
                extended
                    .effective_date
                    .map_or_else(|| "?".to_owned(), |d| d.to_string()),
            );
            EXIT_OK
        }
        Ok(extended) => {
            println!(
                "Apple did not extend {} (not eligible: not active, or extended too often), requestIdentifier {} ({} {})",
                args.original_transaction_id,
                extension.request_identifier,
                extended.bundle_id,
                extended.environment
            );
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("error: {}: {e}", e.code());
            EXIT_FAILED
        }
    }
}

/// `extend-renewal-all`: asks Apple (unless continuing a request), then
/// prints each status until Apple completes it; the last line counts what
/// succeeded and failed.
pub(super) async fn extend_renewal_all(settings: Settings, args: ExtendRenewalAllArgs) -> u8 {
    let continuing = args.status_only;
    let extension = match extension(args.days, &args.reason, args.request_identifier.as_deref()) {
        Ok(extension) => extension,
        Err(code) => return code,
    };
    let cx = prepared!(settings);
    let client = match sync::client_for(
        &cx.api,
        args.bundle_id.as_deref(),
        args.environment.as_deref(),
    ) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {}: {e}", e.code());
            cx.store.close().await;
            return EXIT_USAGE;
        }
    };
    let id = &extension.request_identifier;
    if !continuing {
        if let Err(e) =
            sync::extend_renewal_for_all(client, &args.product, &args.storefronts, &extension).await
        {
            eprintln!("error: {}: {e}", e.code());
            cx.store.close().await;
            return EXIT_FAILED;
        }
        println!(
            "Apple took the extension of every active {} subscriber by {} days ({}): requestIdentifier {id}",
            args.product,
            extension.days,
            extension.reason.name()
        );
    }
    if args.no_wait {
        cx.store.close().await;
        return EXIT_OK;
    }
    let stop = crate::stop::on_ctrl_c();
    let outcome = sync::poll_mass_extension(
        client,
        &args.product,
        id,
        Duration::from_secs(args.poll_seconds.max(1)),
        &stop,
        |status| {
            if !status.complete {
                println!("requestIdentifier {id}: in progress");
            }
        },
    )
    .await;
    cx.store.close().await;
    match outcome {
        Ok(status) if status.complete => {
            println!(
                "requestIdentifier {id}: complete at {}, {} extended, {} failed",
                status
                    .complete_date
                    .map_or_else(|| "?".to_owned(), |d| d.to_string()),
                status.succeeded_count.unwrap_or(0),
                status.failed_count.unwrap_or(0)
            );
            EXIT_OK
        }
        Ok(_) => {
            println!("requestIdentifier {id}: stopped before Apple completed it; follow it with --status-only --request-identifier {id}");
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("error: {}: {e}", e.code());
            EXIT_FAILED
        }
    }
}
