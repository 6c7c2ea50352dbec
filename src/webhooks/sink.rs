//! Where a delivery goes and how it is sent: a signed POST to an endpoint,
//! or a publish to NATS JetStream that counts once the stream acknowledged
//! it. Both send the same body; the delivery loop above them claims, orders
//! and retries alike.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use super::sign;
use crate::config::{EndpointSettings, StreamSettings};

/// What came of sending one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sent {
    /// The endpoint's HTTP status (any), or JetStream's acknowledgement
    /// (`None`).
    Answered(Option<i64>),
    /// Refused without a status (JetStream answered an error).
    Refused(String),
    /// No answer within the sink's timeout.
    TimedOut,
    /// Not reached.
    Unreachable(String),
}

/// A sink, ready to send.
pub(super) enum Sink {
    Http {
        http: reqwest::Client,
        /// Parsed once, not for every delivery.
        url: reqwest::Url,
        keys: Vec<Vec<u8>>,
    },
    JetStream {
        settings: StreamSettings,
        /// Connected, with the stream made, at the first delivery (the
        /// client reconnects by itself after that).
        context: Arc<tokio::sync::OnceCell<jetstream::Context>>,
    },
}

impl Sink {
    pub(super) fn http(endpoint: &EndpointSettings) -> Result<Sink, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_millis(endpoint.timeout_ms))
            // A redirect is not a delivery: the endpoint must answer 2xx.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("appstore-ledger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let url = reqwest::Url::parse(&endpoint.url)
            .map_err(|e| format!("events.endpoints {:?}: url: {e}", endpoint.name))?;
        let keys = endpoint.keys();
        // Checked at start-up; without a key nothing could be signed.
        if keys.is_empty() {
            return Err(format!("events.endpoints {:?}: no secret", endpoint.name));
        }
        Ok(Sink::Http { http, url, keys })
    }

    pub(super) fn jetstream(settings: &StreamSettings) -> Sink {
        Sink::JetStream {
            settings: settings.clone(),
            context: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// Sends `body` as event `event_id` (about `bundle_id`, of
    /// `event_type`) at `timestamp` (UNIX seconds).
    pub(super) async fn send(
        &self,
        event_id: &str,
        event_type: &str,
        bundle_id: Option<&str>,
        timestamp: i64,
        body: String,
        timeout: Duration,
    ) -> Sent {
        match self {
            Sink::Http { http, url, keys } => {
                let signature = sign(keys, event_id, timestamp, &body);
                let sent = http
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .header("webhook-id", event_id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) => Sent::Answered(Some(i64::from(response.status().as_u16()))),
                    Err(e) if e.is_timeout() => Sent::TimedOut,
                    Err(e) => Sent::Unreachable(e.to_string()),
                }
            }
            Sink::JetStream { settings, context } => {
                let publish = async {
                    let context = context
                        .get_or_try_init(|| connect(settings, timeout))
                        .await
                        .map_err(Sent::Unreachable)?;
                    let subject = format!(
                        "{}.{}.{event_type}",
                        settings.subject_prefix,
                        bundle_id.map_or_else(|| "unknown".to_owned(), subject_token)
                    );
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Msg-Id", event_id);
                    let ack = context
                        .publish_with_headers(subject, headers, body.into())
                        .await
                        .map_err(|e| Sent::Unreachable(e.to_string()))?;
                    // Stored (or a duplicate JetStream already holds) once
                    // the stream says so.
                    ack.await.map_err(|e| Sent::Refused(e.to_string()))?;
                    Ok::<_, Sent>(Sent::Answered(None))
                };
                match tokio::time::timeout(timeout, publish).await {
                    Ok(Ok(sent) | Err(sent)) => sent,
                    Err(_) => Sent::TimedOut,
                }
            }
        }
    }
}

/// A bundle id as subject tokens: its dots stay separators (a consumer
/// filters `prefix.com.example.app.*`); anything a subject cannot hold
/// becomes `_`.
fn subject_token(bundle_id: &str) -> String {
    bundle_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Connects to NATS and makes sure the stream keeps the sink's subjects.
async fn connect(
    settings: &StreamSettings,
    timeout: Duration,
) -> Result<jetstream::Context, String> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        .name(concat!("appstore-ledger/", env!("CARGO_PKG_VERSION")))
        .connect(settings.url.as_str())
        .await
        .map_err(|e| format!("NATS at {}: {e}", settings.url))?;
    let context = jetstream::new(client);
    context
        .get_or_create_stream(jetstream::stream::Config {
            name: settings.stream.clone(),
            subjects: vec![format!("{}.>", settings.subject_prefix)],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("JetStream stream {}: {e}", settings.stream))?;
    Ok(context)
}
