//! `[events]`: entitlement events, their feed, and the endpoints they are
//! delivered to (`[[events.endpoints]]`, signed webhooks).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::ledger::event_kinds;

/// Entitlement events (`GET /v1/events`, webhooks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSettings {
    /// Events older than this are removed (at least 1); a feed cursor
    /// before them answers 410 CURSOR_EXPIRED.
    pub retention_days: u64,
    /// How long an instance's claim on a delivery lasts: one killed
    /// mid-delivery leaves it to the others after this.
    pub claim_lease_seconds: u64,
    /// Where events are delivered.
    #[serde(default)]
    pub endpoints: Vec<EndpointSettings>,
    /// NATS JetStream streams events are published to.
    #[serde(default)]
    pub streams: Vec<StreamSettings>,
}

/// One `[[events.streams]]`: events published to NATS JetStream, one
/// subject per app and event type (`{subject_prefix}.{bundleId}.{type}`),
/// the event id as `Nats-Msg-Id` so that JetStream drops a republished
/// one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    /// Names the sink in metrics and `events replay`; shares the
    /// endpoints' names (one name, one sink).
    pub name: String,
    /// `nats://host:port` (or `tls://`).
    pub url: String,
    pub subject_prefix: String,
    /// The JetStream stream that keeps `{subject_prefix}.>`, created when
    /// missing.
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default)]
    pub types: Option<Vec<String>>,
    #[serde(default)]
    pub apps: Option<Vec<String>>,
    /// A publish not acknowledged within this long is retried.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_stream() -> String {
    "APPSTORE_LEDGER_EVENTS".into()
}

/// A sink's `types` and `apps` (each all when absent).
pub type SinkFilter = (Option<Vec<String>>, Option<Vec<String>>);

/// Which events a sink takes: of these types, about these apps (all when
/// absent).
pub fn takes(
    types: Option<&[String]>,
    apps: Option<&[String]>,
    kind: &str,
    bundle_id: Option<&str>,
) -> bool {
    types.is_none_or(|types| types.iter().any(|t| t == kind))
        && apps.is_none_or(|apps| bundle_id.is_some_and(|b| apps.iter().any(|a| a == b)))
}

/// A NATS subject token or a stream name: no separators, wildcards or
/// whitespace.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl StreamSettings {
    pub fn wants(&self, kind: &str, bundle_id: Option<&str>) -> bool {
        takes(self.types.as_deref(), self.apps.as_deref(), kind, bundle_id)
    }

    fn problem(&self, at: usize) -> Option<String> {
        let key = |field: &str| format!("events.streams[{at}].{field}");
        if !is_name(&self.name) || self.name.len() > 64 {
            return Some(format!("{}: 1 to 64 letters, digits, - or _", key("name")));
        }
        if !(self.url.starts_with("nats://") || self.url.starts_with("tls://")) {
            return Some(format!("{}: must start with nats:// or tls://", key("url")));
        }
        if !self.subject_prefix.split('.').all(is_name) {
            return Some(format!(
                "{}: dot-separated tokens of letters, digits, - or _",
                key("subject_prefix")
            ));
        }
        if !is_name(&self.stream) {
            return Some(format!("{}: letters, digits, - or _", key("stream")));
        }
        if let Some(unknown) = self
            .types
            .iter()
            .flatten()
            .find(|t| !event_kinds::ALL.contains(&t.as_str()))
        {
            return Some(format!(
                "{}: {unknown:?} is not an event type",
                key("types")
            ));
        }
        (self.timeout_ms == 0).then(|| format!("{}: must be positive", key("timeout_ms")))
    }
}

/// The defaults of `[events]`, for the figment's first layer.
#[derive(Debug, Serialize)]
pub(super) struct EventsDefaults {
    pub(super) retention_days: u64,
    pub(super) claim_lease_seconds: u64,
}

pub(super) fn defaults() -> EventsDefaults {
    EventsDefaults {
        retention_days: 30,
        claim_lease_seconds: 30,
    }
}

/// One `[[events.endpoints]]`: a URL that receives signed webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSettings {
    /// Names the endpoint in metrics, the console and `events replay`.
    pub name: String,
    /// https://, or http:// on a loopback host.
    pub url: String,
    /// A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64
    /// random bytes.
    pub secret: SecretString,
    /// The secret being rotated out: while it is set, each delivery
    /// carries a signature by both.
    #[serde(default)]
    pub previous_secret: Option<SecretString>,
    /// Only these event types (all when absent).
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// Only events of these apps' bundle ids (all when absent).
    #[serde(default)]
    pub apps: Option<Vec<String>>,
    /// A delivery not answered within this long is retried.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// The key of a Standard Webhooks secret: the bytes its base64 names.
pub fn webhook_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| "must be whsec_ followed by base64".to_owned())?;
    if (24..=64).contains(&key.len()) {
        Ok(key)
    } else {
        Err(format!(
            "must hold 24 to 64 bytes (it holds {}); generate one with `openssl rand -base64 32`",
            key.len()
        ))
    }
}

impl EndpointSettings {
    /// The keys to sign with: the current secret's, then the previous one's.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        std::iter::once(&self.secret)
            .chain(&self.previous_secret)
            .filter_map(|s| webhook_key(s.expose_secret()).ok())
            .collect()
    }

    /// Whether an event of `kind` about an app of `bundle_id` goes here.
    pub fn wants(&self, kind: &str, bundle_id: Option<&str>) -> bool {
        takes(self.types.as_deref(), self.apps.as_deref(), kind, bundle_id)
    }

    fn problem(&self, at: usize) -> Option<String> {
        let key = |field: &str| format!("events.endpoints[{at}].{field}");
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Some(format!("{}: 1 to 64 letters, digits, - or _", key("name")));
        }
        if let Err(why) = super::check_base_url(&self.url) {
            return Some(format!("{}: {why}", key("url")));
        }
        if let Err(why) = webhook_key(self.secret.expose_secret()) {
            return Some(format!("{}: {why}", key("secret")));
        }
        if let Some(previous) = &self.previous_secret {
            if let Err(why) = webhook_key(previous.expose_secret()) {
                return Some(format!("{}: {why}", key("previous_secret")));
            }
        }
        if let Some(unknown) = self
            .types
            .iter()
            .flatten()
            .find(|t| !event_kinds::ALL.contains(&t.as_str()))
        {
            return Some(format!(
                "{}: {unknown:?} is not one of {}",
                key("types"),
                event_kinds::ALL.join(", ")
            ));
        }
        if self.timeout_ms == 0 {
            return Some(format!("{}: must be positive", key("timeout_ms")));
        }
        None
    }
}

impl EventsSettings {
    /// The error for a value that cannot be kept, naming its key.
    pub(super) fn problem(&self) -> Option<String> {
        if self.retention_days == 0 {
            return Some("events.retention_days: must be at least 1".to_owned());
        }
        if self.claim_lease_seconds == 0 {
            return Some("events.claim_lease_seconds: must be positive".to_owned());
        }
        for (at, endpoint) in self.endpoints.iter().enumerate() {
            if let Some(problem) = endpoint.problem(at) {
                return Some(problem);
            }
            // A claim must outlast the attempt it covers, or another
            // instance would send the same event meanwhile.
            if endpoint.timeout_ms >= self.claim_lease_seconds.saturating_mul(1000) {
                return Some(format!(
                    "events.endpoints[{at}].timeout_ms: must be shorter than events.claim_lease_seconds"
                ));
            }
            if self
                .endpoints
                .iter()
                .take(at)
                .any(|e| e.name == endpoint.name)
            {
                return Some(format!(
                    "events.endpoints[{at}].name: {:?} names another endpoint too",
                    endpoint.name
                ));
            }
        }
        let lease_ms = self.claim_lease_seconds.saturating_mul(1000);
        for (at, stream) in self.streams.iter().enumerate() {
            if let Some(problem) = stream.problem(at) {
                return Some(problem);
            }
            if stream.timeout_ms >= lease_ms {
                return Some(format!(
                    "events.streams[{at}].timeout_ms: must be shorter than events.claim_lease_seconds"
                ));
            }
        }
        let mut names: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.name.as_str())
            .chain(self.streams.iter().map(|s| s.name.as_str()))
            .collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find_map(|w| match w {
            [a, b] if a == b => Some(*a),
            _ => None,
        }) {
            return Some(format!(
                "events: {twice:?} names two sinks (endpoints and streams share one set of names)"
            ));
        }
        None
    }

    /// What the sink `name` takes, if one is so named: `(types, apps)`.
    pub fn filter(&self, name: &str) -> Option<SinkFilter> {
        self.endpoints
            .iter()
            .find(|e| e.name == name)
            .map(|e| (e.types.clone(), e.apps.clone()))
            .or_else(|| {
                self.streams
                    .iter()
                    .find(|s| s.name == name)
                    .map(|s| (s.types.clone(), s.apps.clone()))
            })
    }

    /// Every sink's name: endpoints, then streams.
    pub fn sink_names(&self) -> Vec<&str> {
        self.endpoints
            .iter()
            .map(|e| e.name.as_str())
            .chain(self.streams.iter().map(|s| s.name.as_str()))
            .collect()
    }

    /// Retention in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        i64::try_from(self.retention_days)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400_000)
    }

    /// The claim lease in milliseconds.
    pub fn claim_lease_ms(&self) -> i64 {
        i64::try_from(self.claim_lease_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standard_webhooks_secret_names_its_key() {
        // 32 bytes of 0x01, as `whsec_` + base64.
        let secret = format!("whsec_{}", STANDARD.encode([1u8; 32]));
        assert_eq!(webhook_key(&secret), Ok(vec![1u8; 32]));
        assert!(webhook_key("whsec_not base64!").is_err());
        assert!(webhook_key(&format!("whsec_{}", STANDARD.encode([1u8; 8]))).is_err());
    }

    fn stream(name: &str, prefix: &str) -> StreamSettings {
        StreamSettings {
            name: name.into(),
            url: "nats://127.0.0.1:4222".into(),
            subject_prefix: prefix.into(),
            stream: default_stream(),
            types: None,
            apps: None,
            timeout_ms: 1000,
        }
    }

    #[test]
    fn a_stream_needs_subject_tokens_and_a_name_of_its_own() {
        let settings = |streams: Vec<StreamSettings>| EventsSettings {
            retention_days: 30,
            claim_lease_seconds: 30,
            endpoints: Vec::new(),
            streams,
        };
        assert_eq!(
            settings(vec![stream("bus", "appstore.events")]).problem(),
            None
        );
        assert_eq!(
            settings(vec![stream("bus", "appstore.*")])
                .problem()
                .as_deref(),
            Some(
                "events.streams[0].subject_prefix: dot-separated tokens of letters, digits, - or _"
            )
        );
        assert_eq!(
            settings(vec![stream("bus", "a"), stream("bus", "b")])
                .problem()
                .as_deref(),
            Some("events: \"bus\" names two sinks (endpoints and streams share one set of names)")
        );
        assert!(stream("bus", "a").wants("REFUNDED", None));
    }
}
