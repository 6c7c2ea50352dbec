//! `appstore-ledger verify`: tokens checked by hand, for operators and support.

use std::fmt::{self, Display};
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::jws::{
    unverified_signed_date, ExpectedIdentity, TokenKind, TrustAnchors, Verifier, VerifyError,
    MAX_TOKEN_BYTES,
};
use crate::model::{Environment, Timestamp};

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
        now: crate::clock::Clock::now(&crate::clock::SystemClock),
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
    /// write the output is an error here. `position` names the token in a
    /// failure (made only then: most tokens verify).
    fn verify_token(&mut self, position: &dyn Display, token: &str) -> io::Result<()> {
        let outcome = self
            .effective_time(token)
            .and_then(|at| self.verifier.verify(token, self.kind, &self.expected, at));
        match outcome {
            Ok(verified) => {
                serde_json::to_writer(&mut *self.out, &verified.into_printed())?;
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

    /// One token per line. A line wholly in the reader's buffer (the
    /// command's holds about five notifications) is verified where it lies,
    /// found with memchr's vectorised search; only a line across the
    /// buffer's end is copied.
    fn verify_lines(&mut self, input: &mut dyn BufRead) -> io::Result<()> {
        let limit = MAX_TOKEN_BYTES + 4096;
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            number = number.saturating_add(1);
            let position = StdinLine(number);
            let buffer = loop {
                match input.fill_buf() {
                    Ok(buffer) => break buffer,
                    // A signal, not the end: read_until tries again too.
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.unreadable(&e),
                }
            };
            if buffer.is_empty() {
                return Ok(());
            }
            if let Some(newline) = memchr::memchr(b'\n', buffer) {
                // The line with its newline, as a longer read would count it.
                let length = newline.saturating_add(1);
                if length <= limit {
                    let text = buffer.get(..newline).unwrap_or_default();
                    let outcome = self.verify_line(&position, text);
                    input.consume(length);
                    outcome?;
                    continue;
                }
            }
            line.clear();
            if let Err(e) = input.take(limit as u64 + 1).read_until(b'\n', &mut line) {
                return self.unreadable(&e);
            }
            if line.len() > limit {
                skip_rest_of_line(input);
                let error = VerifyError::TokenTooLarge {
                    limit: MAX_TOKEN_BYTES,
                };
                self.status = self.status.max(EXIT_FAILED);
                writeln!(self.err, "{position}: {}: {error}", error.code())?;
                continue;
            }
            self.verify_line(&position, &line)?;
        }
    }

    fn verify_line(&mut self, position: &StdinLine, line: &[u8]) -> io::Result<()> {
        match std::str::from_utf8(line) {
            Ok(text) if text.trim().is_empty() => Ok(()),
            Ok(text) => self.verify_token(position, text.trim()),
            Err(_) => {
                let error = VerifyError::MalformedToken("the token is not text");
                self.status = self.status.max(EXIT_FAILED);
                writeln!(self.err, "{position}: {}: {error}", error.code())
            }
        }
    }

    fn unreadable(&mut self, error: &io::Error) -> io::Result<()> {
        self.status = self.status.max(EXIT_USAGE);
        writeln!(self.err, "<stdin>: cannot read: {error}")
    }
}

/// A line of standard input, as failures name it.
struct StdinLine(u64);

impl Display for StdinLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<stdin>:{}", self.0)
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
