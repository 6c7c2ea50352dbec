//! Logs: human-readable or JSON lines, filtered by `log.level`.

use std::fmt;

use tracing::field::Field;
use tracing_subscriber::field::{MakeExt, MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Writes a field of a human log line with its control characters escaped:
/// a value from outside (a user name, a product id) that holds a newline
/// or a terminal escape must not start a line of its own or recolour one.
fn escaped_field(writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let text = escape_control(&format!("{value:?}"));
    if field.name() == "message" {
        write!(writer, "{text}")
    } else {
        write!(writer, "{field}={text}")
    }
}

/// `text` with every control character written as its escape (`\n`,
/// `\u{1b}`).
pub fn escape_control(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// How the human format writes fields: escaped, space-separated.
fn human_fields(
) -> impl for<'w> MakeVisitor<Writer<'w>, Visitor: VisitFmt + VisitOutput<fmt::Result>>
       + Send
       + Sync
       + 'static {
    debug_fn(escaped_field).delimited(" ")
}

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if settings.format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        // JSON escapes on its own; the human lines need it done.
        builder.fmt_fields(human_fields()).try_init()
    };
}

/// An error and every cause under it, `: `-separated: what a log line or an
/// operator needs, where `Display` alone says only the outermost part.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_value_with_a_newline_cannot_forge_a_human_log_line() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(human_fields())
            .finish();
        let forged = "ana\n2026-12-06T00:00:00Z  INFO console sign-in user=admin\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", route = %forged);
            let _entered = span.enter();
            tracing::info!(user = %forged, address = "127.0.0.1", "console sign-in failed");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("console sign-in failed"), "{text}");
        assert!(
            text.contains(
                r"user=ana\n2026-12-06T00:00:00Z  INFO console sign-in user=admin\u{1b}[2J"
            ),
            "{text}"
        );
        assert!(text.contains(r"route=ana\n"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn only_control_characters_are_escaped() {
        assert_eq!(escape_control("plain \"quoted\" é"), "plain \"quoted\" é");
        assert_eq!(escape_control("a\r\nb\t\0"), r"a\r\nb\t\u{0}");
    }
}
