//! The command line: `appstore-ledger <command>`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::check;
use crate::config::Settings;
use crate::ingest::{Ingest, Ingested};
use crate::jws::{
    unverified_signed_date, ExpectedIdentity, TokenKind, TrustAnchors, Verifier, VerifyError,
    MAX_TOKEN_BYTES,
};
use crate::model::{Environment, Timestamp};
use crate::startup::Application;
use crate::store::Store;
use crate::telemetry;

/// Exit status when every token verified.
pub const EXIT_OK: u8 = 0;
/// Exit status when at least one token failed verification.
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
    /// Find what Apple should have told us and did not.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
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

#[derive(Debug, Args)]
pub struct RebuildArgs {
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
pub struct ReprocessArgs {
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Re-check the quarantined notifications against the configured apps and
    /// release those that now belong to one.
    #[arg(long, required = true)]
    pub quarantined: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A trusted root certificate (DER or PEM); repeat for several. Default:
    /// the embedded Apple Root CA - G3.
    #[arg(long = "root", value_name = "FILE")]
    pub roots: Vec<PathBuf>,
    /// Require this bundle id; repeat to accept several.
    #[arg(long = "bundle-id", value_name = "ID")]
    pub bundle_ids: Vec<String>,
    /// Require this environment (Production, Sandbox, Xcode, LocalTesting); repeat to accept several.
    #[arg(long = "environment", value_name = "ENV", value_parser = parse_environment)]
    pub environments: Vec<Environment>,
    /// Require this appAppleId (always present in Production payloads).
    #[arg(long = "app-apple-id", value_name = "N")]
    pub app_apple_id: Option<i64>,
    /// When to judge certificate validity: now, signed (each token's own
    /// signedDate), or an RFC 3339 date-time.
    #[arg(long, value_name = "WHEN", default_value = "now", value_parser = parse_at)]
    pub at: At,
    /// What the tokens are; auto tells from each payload.
    #[arg(long, value_enum, default_value_t = KindArg::Auto)]
    pub kind: KindArg,
    /// Files holding one token each; `-` (or none) reads standard input, one token per line.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Now,
    Signed,
    Fixed(Timestamp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Auto,
    Notification,
    Transaction,
    Renewal,
    AppTransaction,
}

impl KindArg {
    fn token_kind(self) -> Option<TokenKind> {
        match self {
            KindArg::Auto => None,
            KindArg::Notification => Some(TokenKind::Notification),
            KindArg::Transaction => Some(TokenKind::Transaction),
            KindArg::Renewal => Some(TokenKind::RenewalInfo),
            KindArg::AppTransaction => Some(TokenKind::AppTransaction),
        }
    }
}

fn parse_environment(text: &str) -> Result<Environment, String> {
    match Environment::from_raw(text) {
        Environment::Unknown(_) => {
            Err(format!("expected one of {}", Environment::KNOWN.join(", ")))
        }
        known => Ok(known),
    }
}

fn parse_at(text: &str) -> Result<At, String> {
    match text {
        "now" => Ok(At::Now),
        "signed" => Ok(At::Signed),
        other => Timestamp::parse_rfc3339(other)
            .map(At::Fixed)
            .ok_or_else(|| "expected now, signed or an RFC 3339 date-time".to_owned()),
    }
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
            verify(
                &args,
                &mut stdin.lock(),
                &mut io::BufWriter::new(stdout.lock()),
                &mut stderr.lock(),
            )
        }
        Command::Serve(args) => with_runtime(serve, args.config.as_deref()),
        Command::Reprocess(args) => with_runtime(reprocess_quarantined, args.config.as_deref()),
        Command::Rebuild(args) => with_runtime(rebuild, args.config.as_deref()),
        Command::Check(args) => {
            let (at, json) = (args.at, args.json);
            with_runtime(
                move |settings| check(settings, at, json),
                args.config.as_deref(),
            )
        }
    }
}

/// `check`: scans every subscription and prints the open findings; exit 0
/// with none, 3 with some.
async fn check(settings: Settings, at: Option<Timestamp>, json: bool) -> u8 {
    let store = match Store::connect(&settings.database).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let at = at.unwrap_or_else(Timestamp::now);
    let terminal = io::IsTerminal::is_terminal(&io::stderr());
    let outcome = check::run(
        &store,
        at,
        &settings.check.tolerance_minutes,
        |done, total| {
            if terminal {
                let percent = (done * 100).checked_div(total).unwrap_or(100);
                eprint!("\rchecking: {done}/{total} subscriptions and purchases ({percent}%)");
            }
        },
    )
    .await;
    if terminal {
        eprintln!();
    }
    store.close().await;
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
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

/// `rebuild`: the ledger folded again from every stored notification. Safe
/// to run beside the service and to interrupt: each chunk of subscriptions is
/// replaced in one transaction, and a rerun redoes them all.
async fn rebuild(settings: Settings) -> u8 {
    let store = match Store::connect(&settings.database).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let started = std::time::Instant::now();
    let mut last_report = std::time::Instant::now();
    let outcome = store
        .rebuild(|done, total| {
            if last_report.elapsed() >= std::time::Duration::from_secs(1) || done == total {
                last_report = std::time::Instant::now();
                let percent = if total == 0 {
                    100.0
                } else {
                    done as f64 * 100.0 / total as f64
                };
                eprintln!("rebuild: {done}/{total} notifications ({percent:.0}%)");
            }
        })
        .await;
    store.close().await;
    match outcome {
        Ok(done) => {
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "rebuilt the ledger from {done} notifications in {seconds:.1} s ({:.0}/s)",
                done as f64 / seconds.max(1e-9)
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

/// Loads the settings, starts logging and a runtime, and runs `command`.
fn with_runtime<F, Fut>(command: F, config: Option<&Path>) -> u8
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = u8>,
{
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
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
            eprintln!("error: {e}");
            return EXIT_FAILED;
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

/// `reprocess --quarantined`: each quarantined notification is verified again
/// (at the time it was received, when its chain was checked) and released if a
/// configured app now expects it. Safe to interrupt: each release is one
/// transaction, and a rerun continues with what is left.
async fn reprocess_quarantined(settings: Settings) -> u8 {
    let prepared = async {
        let anchors = settings.trust_anchors().map_err(|e| e.to_string())?;
        let store = Store::connect(&settings.database)
            .await
            .map_err(|e| e.to_string())?;
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
    let (mut seen, mut released, mut kept, mut failed) = (0i64, 0u64, 0u64, 0u64);
    let mut after = 0;
    let outcome = loop {
        let page = match store.quarantined(after, 500).await {
            Ok(page) if page.is_empty() => break Ok(()),
            Ok(page) => page,
            Err(e) => break Err(e.to_string()),
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
                        eprintln!("{}: not released: {e}", q.notification_uuid);
                    }
                },
                Ok(Ingested::Quarantined(_, reason)) => {
                    kept += 1;
                    tracing::debug!(notification_uuid = %q.notification_uuid, code = %reason.code, "still unexpected");
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("{}: {}: {e}", q.notification_uuid, e.code());
                }
            }
        }
        eprintln!("reprocess: {seen}/{total} checked");
    };
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

/// `appstore-ledger verify`, with its streams passed in.
pub fn verify(
    args: &VerifyArgs,
    stdin: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let anchors = match load_roots(&args.roots) {
        Ok(anchors) => anchors,
        Err(message) => {
            let _ = writeln!(err, "error: {message}");
            return EXIT_USAGE;
        }
    };
    let mut run = VerifyRun {
        verifier: Verifier::new(anchors),
        expected: ExpectedIdentity {
            bundle_ids: args.bundle_ids.clone(),
            environments: args.environments.clone(),
            app_apple_id: args.app_apple_id,
        },
        kind: args.kind.token_kind(),
        at: args.at,
        now: Timestamp::now(),
        status: EXIT_OK,
        out,
        err,
    };
    let stdin_only = [PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin_only[..]
    } else {
        &args.files[..]
    };
    for file in files {
        let outcome = if file.as_os_str() == "-" {
            run.verify_lines(stdin)
        } else {
            run.verify_file(file)
        };
        if outcome.is_err() {
            let _ = writeln!(run.err, "error: cannot write the output");
            return EXIT_FAILED;
        }
    }
    if run.out.flush().is_err() {
        let _ = writeln!(run.err, "error: cannot write the output");
        return EXIT_FAILED;
    }
    run.status
}

fn load_roots(paths: &[PathBuf]) -> Result<TrustAnchors, String> {
    if paths.is_empty() {
        return TrustAnchors::apple_root_ca_g3().map_err(|e| e.to_string());
    }
    let mut anchors = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        anchors.extend(
            TrustAnchors::parse_file(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
        );
    }
    TrustAnchors::new(anchors).map_err(|e| e.to_string())
}

struct VerifyRun<'a> {
    verifier: Verifier,
    expected: ExpectedIdentity,
    kind: Option<TokenKind>,
    at: At,
    now: Timestamp,
    status: u8,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl VerifyRun<'_> {
    /// Verifies one token, printing its JSON or its failure. Only a failure to
    /// write the output is an error here.
    fn verify_token(&mut self, position: &str, token: &str) -> io::Result<()> {
        let outcome = self
            .effective_time(token)
            .and_then(|at| self.verifier.verify(token, self.kind, &self.expected, at));
        match outcome {
            Ok(verified) => {
                serde_json::to_writer(&mut *self.out, &verified.to_json())?;
                self.out.write_all(b"\n")
            }
            Err(error) => {
                self.status = self.status.max(EXIT_FAILED);
                writeln!(self.err, "{position}: {}: {error}", error.code())
            }
        }
    }

    fn effective_time(&self, token: &str) -> Result<Timestamp, VerifyError> {
        match self.at {
            At::Now => Ok(self.now),
            At::Signed => unverified_signed_date(token),
            At::Fixed(at) => Ok(at),
        }
    }

    fn verify_file(&mut self, path: &Path) -> io::Result<()> {
        let position = path.display().to_string();
        // Read a little past the limit so an oversized file is reported as such
        // without reading all of it.
        let limit = (MAX_TOKEN_BYTES + 4096) as u64;
        let mut bytes = Vec::new();
        let read = File::open(path).and_then(|file| file.take(limit + 1).read_to_end(&mut bytes));
        if let Err(e) = read {
            self.status = self.status.max(EXIT_USAGE);
            return writeln!(self.err, "{position}: cannot read: {e}");
        }
        if bytes.len() as u64 > limit {
            let error = VerifyError::TokenTooLarge {
                limit: MAX_TOKEN_BYTES,
            };
            self.status = self.status.max(EXIT_FAILED);
            return writeln!(self.err, "{position}: {}: {error}", error.code());
        }
        match std::str::from_utf8(&bytes) {
            Ok(text) => self.verify_token(&position, text.trim()),
            Err(_) => {
                let error = VerifyError::MalformedToken("the token is not text");
                self.status = self.status.max(EXIT_FAILED);
                writeln!(self.err, "{position}: {}: {error}", error.code())
            }
        }
    }

    fn verify_lines(&mut self, input: &mut dyn BufRead) -> io::Result<()> {
        let limit = MAX_TOKEN_BYTES + 4096;
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            number += 1;
            let read = match input.take(limit as u64 + 1).read_until(b'\n', &mut line) {
                Ok(read) => read,
                Err(e) => {
                    self.status = self.status.max(EXIT_USAGE);
                    return writeln!(self.err, "<stdin>: cannot read: {e}");
                }
            };
            if read == 0 {
                return Ok(());
            }
            let position = format!("<stdin>:{number}");
            if line.len() > limit {
                skip_rest_of_line(input);
                let error = VerifyError::TokenTooLarge {
                    limit: MAX_TOKEN_BYTES,
                };
                self.status = self.status.max(EXIT_FAILED);
                writeln!(self.err, "{position}: {}: {error}", error.code())?;
                continue;
            }
            match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => {}
                Ok(text) => self.verify_token(&position, text.trim())?,
                Err(_) => {
                    let error = VerifyError::MalformedToken("the token is not text");
                    self.status = self.status.max(EXIT_FAILED);
                    writeln!(self.err, "{position}: {}: {error}", error.code())?;
                }
            }
        }
    }
}

fn skip_rest_of_line(input: &mut dyn BufRead) {
    loop {
        let (consumed, done) = match input.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(buffer) => match buffer.iter().position(|&b| b == b'\n') {
                Some(newline) => (newline + 1, true),
                None => (buffer.len(), false),
            },
        };
        input.consume(consumed);
        if done {
            return;
        }
    }
}
