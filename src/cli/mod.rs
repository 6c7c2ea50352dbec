//! The command line: `appstore-ledger <command>`.

mod appstore;
mod check;
mod copy;
mod events;
mod maintenance;
mod progress;
mod users;
mod verify;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::startup::Application;
use crate::telemetry;

pub use appstore::{
    ApiCheckArgs, BackfillArgs, ExtendRenewalAllArgs, ExtendRenewalArgs, ReconcileArgs,
    RefundsBackfillArgs, SetAppAccountTokenArgs,
};
pub use check::{CheckArgs, EXIT_FINDINGS};
pub use copy::CopyStoreArgs;
pub use events::{EventsAction, EventsArgs};
pub use users::{UserAction, UserArgs};
pub use verify::{verify, At, KindArg, VerifyArgs};

/// Exit status on success (for `verify`: every token verified).
pub const EXIT_OK: u8 = 0;
/// Exit status on failure (for `verify`: a token failed verification).
pub const EXIT_FAILED: u8 = 1;
/// Exit status for a usage error: bad arguments, unreadable roots or files.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "appstore-ledger",
    version,
    about = "Receives App Store Server Notifications V2 and keeps the truth about purchases."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify App Store signed tokens and print their decoded content as JSON lines.
    Verify(VerifyArgs),
    /// Run the webhook service.
    Serve(ServeArgs),
    /// Re-run stored notifications through the current configuration.
    Reprocess(ReprocessArgs),
    /// Recompute every subscription and purchase from the stored notifications.
    Rebuild(RebuildArgs),
    /// Apply what is missing of the database schema, and say what was applied.
    Migrate(RebuildArgs),
    /// Copy every stored notification to another database (SQLite to
    /// PostgreSQL, say) and rebuild the ledger there.
    CopyStore(CopyStoreArgs),
    /// Find what Apple should have told us and did not.
    Check(CheckArgs),
    /// Store what Apple's Notification History holds and the webhook missed.
    Backfill(BackfillArgs),
    /// Ask Apple how subscriptions stand and settle the findings it answers.
    Reconcile(ReconcileArgs),
    /// Learn every refund Apple made (Get Refund History), including those
    /// whose notification never arrived.
    RefundsBackfill(RefundsBackfillArgs),
    /// Check the App Store Server API and notification wiring end to end.
    ApiCheck(ApiCheckArgs),
    /// Ask Apple to sign another appAccountToken into a subscription's or
    /// purchase's later transactions (Set App Account Token).
    SetAppAccountToken(SetAppAccountTokenArgs),
    /// Ask Apple to extend one subscription's renewal date (goodwill time).
    ExtendRenewal(ExtendRenewalArgs),
    /// Ask Apple to extend the renewal date of every active subscriber of a
    /// product, and follow the request until Apple completes it.
    ExtendRenewalAll(ExtendRenewalAllArgs),
    /// Add, remove or list the users of the support console.
    User(UserArgs),
    /// Copy the SQLite database to a new file while `serve` goes on writing
    /// (PostgreSQL: use pg_dump).
    Backup(BackupArgs),
    /// Entitlement events' webhook deliveries: replay, resend, enable an
    /// endpoint, and each endpoint's health.
    Events(EventsArgs),
}

/// For commands that need only the configuration.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables): its database is copied.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The new file to write the copy to; it must not exist.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Re-check the quarantined notifications against the configured apps and
    /// release those that now belong to one.
    #[arg(long, required = true)]
    pub quarantined: bool,
}

/// Runs the command line and returns the process exit status.
pub fn main<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    match cli.command {
        Command::Verify(args) => {
            let stdin = io::stdin();
            let stdout = io::stdout();
            let stderr = io::stderr();
            // 64 KiB hold about five notifications (13 KB each): a line is
            // verified where it lies, and one in five, across the buffer's
            // end, is copied. Larger buffers cost more in the kernel's copy
            // than they save (it no longer stays in the core's cache): 1
            // MiB doubled the copies' share of `verify`'s time.
            verify(
                &args,
                &mut io::BufReader::with_capacity(1 << 16, stdin.lock()),
                &mut io::BufWriter::with_capacity(1 << 16, stdout.lock()),
                &mut stderr.lock(),
            )
        }
        Command::Serve(args) => with_settings(serve, args.config.as_deref(), false),
        Command::Reprocess(args) => {
            with_runtime(maintenance::reprocess_quarantined, args.config.as_deref())
        }
        Command::Rebuild(args) => with_runtime(maintenance::rebuild, args.config.as_deref()),
        Command::Migrate(args) => with_runtime(maintenance::migrate, args.config.as_deref()),
        Command::Backup(args) => {
            let to = args.to.clone();
            with_runtime(
                move |settings| maintenance::backup(settings, to),
                args.config.as_deref(),
            )
        }
        Command::Backfill(args) => {
            let config = args.config.clone();
            with_runtime(
                move |settings| appstore::backfill(settings, args),
                config.as_deref(),
            )
        }
        Command::Reconcile(args) => {
            let config = args.config.clone();
            with_runtime(
                move |settings| appstore::reconcile(settings, args),
                config.as_deref(),
            )
        }
        Command::CopyStore(args) => {
            let config = args.config.clone();
            with_runtime(
                move |settings| copy::copy_store(settings, args),
                config.as_deref(),
            )
        }
        Command::Events(args) => with_runtime(
            move |settings| events::events(settings, args.action),
            args.config.as_deref(),
        ),
        Command::User(args) => with_runtime(
            move |settings| users::user(settings, args.action),
            args.config.as_deref(),
        ),
        Command::ApiCheck(args) => {
            let config = args.config.clone();
            with_runtime(
                move |settings| appstore::api_check(settings, args),
                config.as_deref(),
            )
        }
        Command::SetAppAccountToken(args) => {
            let config = args.config.clone();
            with_runtime(
                move |settings| appstore::set_app_account_token(settings, args),
                config.as_deref(),
            )
        }
        Command::RefundsBackfill(args) => {
            let config = args.config.clone();
            with_runtime(
                move |settings| appstore::refunds_backfill(settings, args),
                config.as_deref(),
            )
        }
        Command::ExtendRenewal(args) => {
            let config = args.config.clone();
            with_runtime(
                move |settings| appstore::extend_renewal(settings, args),
                config.as_deref(),
            )
        }
        Command::ExtendRenewalAll(args) => {
            let config = args.config.clone();
            with_runtime(
                move |settings| appstore::extend_renewal_all(settings, args),
                config.as_deref(),
            )
        }
        Command::Check(args) => {
            let (at, json) = (args.at, args.json);
            with_runtime(
                move |settings| check::check(settings, at, json),
                args.config.as_deref(),
            )
        }
    }
}

/// Loads the settings, starts logging and a runtime, and runs `command`.
fn with_runtime<F, Fut>(command: F, config: Option<&Path>) -> u8
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = u8>,
{
    with_settings(command, config, true)
}

/// How long a command waits for SQLite's write lock at least: the service
/// answers Apple 503 soon rather than wait (`busy_timeout_ms`), but a
/// command an operator runs beside it (rebuild, reprocess, backfill) waits
/// its turn instead of failing on the service's next commit.
const COMMAND_BUSY_TIMEOUT_MS: u64 = 5_000;

/// Loads the settings (for a command, with [`COMMAND_BUSY_TIMEOUT_MS`] at
/// least), starts logging and a runtime, and runs `command`.
fn with_settings<F, Fut>(command: F, config: Option<&Path>, is_command: bool) -> u8
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = u8>,
{
    let mut settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if is_command {
        settings.database.busy_timeout_ms = settings
            .database
            .busy_timeout_ms
            .max(COMMAND_BUSY_TIMEOUT_MS);
    }
    telemetry::init(&settings.log);
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(command(settings)),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            EXIT_FAILED
        }
    }
}

async fn serve(settings: Settings) -> u8 {
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(e) => {
            eprintln!("error: {}", crate::telemetry::chain(&e));
            // 2 for what the configuration says, 1 for what happened.
            return if e.is_configuration() {
                EXIT_USAGE
            } else {
                EXIT_FAILED
            };
        }
    };
    match application.run_until_stopped().await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument of every subcommand tells what it is for in `--help`.
    #[test]
    fn every_argument_is_described() {
        fn undescribed(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg
                    .get_help()
                    .is_none_or(|help| help.to_string().trim().is_empty())
                {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                undescribed(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        undescribed(&Cli::command(), "appstore-ledger", &mut missing);
        assert_eq!(missing, Vec::<String>::new());
    }
}
