//! A webhook receiver for the tests, on loopback: it checks every
//! delivery's signature by the Standard Webhooks algorithm (written here
//! from the specification, not the service's code), records what came,
//! answers as the test cues, and notes any event that arrived before the
//! one before it of its item was accepted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

/// What to answer a delivery: `Ok`, a status, or no answer for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    Ok,
    Status(u16),
    Sleep(Duration),
}

/// The cue for a delivery of event `id` (with its body), the `n`th
/// request for that id (0 first).
pub type Rule = Box<dyn Fn(&str, &Value, usize) -> Cue + Send + Sync>;

/// One request, as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub body: Value,
    /// Whether it carried a valid signature for each of the receiver's keys.
    pub verified: bool,
    pub answered: Cue,
}

impl Received {
    /// The item the event is about, and its sequence.
    pub fn item(&self) -> (String, i64) {
        item_of(&self.body)
    }
}

fn item_of(body: &Value) -> (String, i64) {
    let data = &body["data"];
    let id = match data["item"].as_str() {
        Some("purchase") => data["answer"]["transactionId"].as_str(),
        _ => data["answer"]["originalTransactionId"].as_str(),
    };
    (
        format!(
            "{}:{}",
            data["item"].as_str().unwrap_or("?"),
            id.unwrap_or("?")
        ),
        data["sequence"].as_i64().unwrap_or(-1),
    )
}

struct Inner {
    rule: Rule,
    received: Vec<Received>,
    /// Per item, the highest sequence accepted.
    accepted: HashMap<String, i64>,
    /// Deliveries that came before the one before them was accepted.
    out_of_order: Vec<String>,
    /// Whether an item's events must come one sequence after another (an
    /// endpoint that takes every event).
    contiguous: bool,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    keys: Arc<Vec<Vec<u8>>>,
    inner: Arc<Mutex<Inner>>,
}

/// The key of a `whsec_` secret.
pub fn key_of(secret: &str) -> Vec<u8> {
    STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap()
}

/// A new secret: 32 bytes, `whsec_`-prefixed base64.
pub fn new_secret(seed: u8) -> String {
    let bytes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(7).wrapping_add(seed))
        .collect();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// Whether `header` holds a `v1,` signature of `id.timestamp.body` by `key`.
fn signed_by(key: &[u8], id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    header.split(' ').any(|part| {
        part.strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .is_some_and(|tag| ring::hmac::verify(&key, &content, &tag).is_ok())
    })
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let verified = !receiver.keys.is_empty()
        && receiver
            .keys
            .iter()
            .all(|key| signed_by(key, &id, &timestamp, &body, &signature));
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let cue = {
        let mut inner = receiver.inner.lock().unwrap();
        let n = inner.received.iter().filter(|r| r.id == id).count();
        let cue = (inner.rule)(&id, &json, n);
        let (item, sequence) = item_of(&json);
        let last = inner.accepted.get(&item).copied().unwrap_or(0);
        let early = if inner.contiguous {
            sequence > last + 1
        } else {
            false
        };
        if early || sequence < last {
            inner
                .out_of_order
                .push(format!("{item} #{sequence} after #{last}"));
        }
        if cue == Cue::Ok {
            inner.accepted.insert(item, last.max(sequence));
        }
        inner.received.push(Received {
            id,
            timestamp: timestamp.parse().unwrap_or(-1),
            body: json,
            verified,
            answered: cue,
        });
        cue
    };
    match cue {
        Cue::Ok => StatusCode::NO_CONTENT,
        Cue::Status(status) => StatusCode::from_u16(status).unwrap(),
        Cue::Sleep(how_long) => {
            tokio::time::sleep(how_long).await;
            StatusCode::OK
        }
    }
}

impl Receiver {
    /// Listens on 127.0.0.1, checking signatures by `secrets`, answering by
    /// `rule`.
    pub async fn start(secrets: &[&str], rule: Rule) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let receiver = Receiver {
            url,
            keys: Arc::new(secrets.iter().map(|s| key_of(s)).collect()),
            inner: Arc::new(Mutex::new(Inner {
                rule,
                received: Vec::new(),
                accepted: HashMap::new(),
                out_of_order: Vec::new(),
                contiguous: true,
            })),
        };
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    /// Answers from now on by `rule`.
    pub fn cue(&self, rule: Rule) {
        self.inner.lock().unwrap().rule = rule;
    }

    /// Sequences may skip (an endpoint with a filter).
    pub fn allow_gaps(&self) {
        self.inner.lock().unwrap().contiguous = false;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// The events accepted, each once, in the order of their first
    /// acceptance.
    pub fn accepted(&self) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| r.answered == Cue::Ok && seen.insert(r.id.clone()))
            .collect()
    }

    /// How many times each event id was accepted.
    pub fn accepted_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.received() {
            if r.answered == Cue::Ok {
                *counts.entry(r.id).or_default() += 1;
            }
        }
        counts
    }

    /// Starts the order check afresh (before a replay sends everything
    /// again).
    pub fn forget_order(&self) {
        self.inner.lock().unwrap().accepted.clear();
    }

    pub fn out_of_order(&self) -> Vec<String> {
        self.inner.lock().unwrap().out_of_order.clone()
    }
}

/// Answers every delivery 2xx.
pub fn always_ok() -> Rule {
    Box::new(|_, _, _| Cue::Ok)
}
