//! A fake App Store Server API, started on port 0: it checks every bearer
//! token as Apple does (ES256 signature with the test key's public half,
//! kid, iss, aud, bid, lifetime), pages notification history, answers from
//! tables the test fills, and fails on purpose where the test scripts it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};

use crate::helpers::BUNDLE_ID;

pub const ISSUER_ID: &str = "57246542-96fe-1a63-e053-0824d011072a";
pub const KEY_ID: &str = "2X9R4HXF34";

/// An answer given once, to the next request whose path starts with `path`.
pub struct Scripted {
    pub path: &'static str,
    /// Only a request whose query string contains this.
    pub query: &'static str,
    pub status: u16,
    pub body: Option<Value>,
    /// `Retry-After` in milliseconds from now (a UNIX time in ms is sent).
    pub retry_after_ms: Option<i64>,
    /// Send `Retry-After` as HTTP's delay in whole seconds instead.
    pub in_seconds: bool,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
    /// UNIX milliseconds.
    pub at: i64,
}

#[derive(Default)]
pub struct FakeState {
    public_key: Vec<u8>,
    /// Notification history: `(signedPayload, sendAttempts)`.
    pub history: Vec<(String, Value)>,
    pub page_size: usize,
    /// originalTransactionId -> Get All Subscription Statuses body.
    pub statuses: HashMap<String, Value>,
    /// originalTransactionId -> signed transactions (Transaction History).
    pub transactions: HashMap<String, Vec<String>>,
    /// transactionId -> signed transaction (Get Transaction Info).
    pub transaction_info: HashMap<String, String>,
    pub scripted: VecDeque<Scripted>,
    pub seen: Vec<Seen>,
    /// Why tokens were refused; a test expects none unless it says so.
    pub refused_tokens: Vec<String>,
    /// Answer every request 401 with an empty body.
    pub unauthorized: bool,
    /// Seconds added to the `Date` header (a clock that disagrees).
    pub date_offset_secs: i64,
    /// The TEST notification to deliver, and where.
    pub test_notification: Option<String>,
    pub deliver_to: Option<String>,
    pub test_send_attempts: Value,
    /// originalTransactionId -> the appAccountToken Set App Account Token set.
    pub app_account_tokens: HashMap<String, String>,
    /// requestIdentifier -> (productId, status questions left before it
    /// completes) of each mass extension asked.
    pub mass_extensions: HashMap<String, (String, u32)>,
    /// Status questions a mass extension takes to complete.
    pub mass_extension_polls: u32,
    /// transactionId (any of the customer's) -> the signed transactions
    /// Get Refund History lists, one per page.
    pub refunds: HashMap<String, Vec<String>>,
    /// The clock the fake tells the time by (tokens' lifetimes,
    /// Retry-After), when the test moves time: the service's own.
    pub clock: Option<Arc<appstore_ledger::clock::ManualClock>>,
    /// transactionId -> its product `type`, for Send Consumption
    /// Information's rules (no consumptionPercentage for an auto-renewable
    /// subscription).
    pub product_types: HashMap<String, String>,
    /// Answer every Send Consumption Information with this status.
    pub consumption_failing: Option<u16>,
}

pub struct FakeApple {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
    /// The `.p8` PEM of the key whose public half the fake trusts.
    pub key_pem: String,
}

/// A new P-256 key in PKCS#8 PEM, shaped like the `.p8` file App Store
/// Connect gives.
pub fn p8_pem() -> String {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let body = STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

fn public_key(pem: &str) -> Vec<u8> {
    let der = appstore_ledger::appstore_api::parse_p8(pem).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec()
}

impl FakeApple {
    pub async fn start() -> FakeApple {
        let key_pem = p8_pem();
        let state = Arc::new(Mutex::new(FakeState {
            public_key: public_key(&key_pem),
            page_size: 2,
            mass_extension_polls: 2,
            test_send_attempts: json!([]),
            ..FakeState::default()
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeApple {
            url,
            state,
            key_pem,
        }
    }

    /// Accepts tokens signed with `other`'s key (one key, two environments).
    pub fn trust_key_of(&self, other: &FakeApple) {
        let key = other.state().public_key.clone();
        self.state().public_key = key;
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// The requests seen whose path starts with `prefix`.
    pub fn seen(&self, prefix: &str) -> Vec<Seen> {
        self.state()
            .seen
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

fn now_ms() -> i64 {
    appstore_ledger::clock::Clock::now(&appstore_ledger::clock::SystemClock).as_millis()
}

fn apple_error(status: StatusCode, code: i64) -> Response {
    (
        status,
        axum::Json(json!({"errorCode": code, "errorMessage": "fake"})),
    )
        .into_response()
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    let now = s.clock.as_ref().map_or_else(now_ms, |c| {
        appstore_ledger::clock::Clock::now(&**c).as_millis()
    });
    s.seen.push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
        at: now,
    });
    let token_check = check_token(&s.public_key, &headers, now);
    if s.unauthorized || token_check.is_err() {
        if let Err(why) = token_check {
            s.refused_tokens.push(why);
        }
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        let date = std::time::SystemTime::now()
            .checked_add(std::time::Duration::from_secs(
                s.date_offset_secs.max(0) as u64
            ))
            .and_then(|t| {
                t.checked_sub(std::time::Duration::from_secs(
                    (-s.date_offset_secs).max(0) as u64
                ))
            })
            .unwrap();
        response.headers_mut().insert(
            "date",
            HeaderValue::from_str(&httpdate::fmt_http_date(date)).unwrap(),
        );
        return response;
    }
    if let Some(i) = s
        .scripted
        .iter()
        .position(|x| path.starts_with(x.path) && query.contains(x.query))
    {
        let x = s.scripted.remove(i).unwrap();
        let mut response = match x.body {
            Some(body) => {
                (StatusCode::from_u16(x.status).unwrap(), axum::Json(body)).into_response()
            }
            None => StatusCode::from_u16(x.status).unwrap().into_response(),
        };
        if let Some(after) = x.retry_after_ms {
            let value = if x.in_seconds {
                (after / 1000).to_string()
            } else {
                (now + after).to_string()
            };
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_str(&value).unwrap());
        }
        return response;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["inApps", "v1", "notifications", "history"]) => {
            let start = body["startDate"].as_i64().unwrap_or(0);
            if start < now - 180 * 86_400_000 {
                return apple_error(StatusCode::BAD_REQUEST, 4000012);
            }
            let from: usize = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("paginationToken="))
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let until = (from + s.page_size).min(s.history.len());
            let page: Vec<Value> = s.history[from.min(until)..until]
                .iter()
                .map(|(p, a)| json!({"signedPayload": p, "sendAttempts": a}))
                .collect();
            let has_more = until < s.history.len();
            axum::Json(json!({
                "notificationHistory": page,
                "hasMore": has_more,
                "paginationToken": has_more.then(|| until.to_string()),
            }))
            .into_response()
        }
        ("GET", ["inApps", "v1", "subscriptions", id]) => match s.statuses.get(*id) {
            Some(body) => axum::Json(body.clone()).into_response(),
            None => apple_error(StatusCode::NOT_FOUND, 4040010),
        },
        ("GET", ["inApps", "v2", "history", id]) => match s.transactions.get(*id) {
            Some(list) => axum::Json(json!({
                "signedTransactions": list, "hasMore": false, "revision": "r1",
                "bundleId": BUNDLE_ID, "environment": "Sandbox",
            }))
            .into_response(),
            None => apple_error(StatusCode::NOT_FOUND, 4040010),
        },
        ("PUT", ["inApps", "v1", "transactions", id, "appAccountToken"]) => {
            let known = s.transaction_info.contains_key(*id) || s.statuses.contains_key(*id);
            match body["appAccountToken"].as_str() {
                _ if !known => apple_error(StatusCode::NOT_FOUND, 4040010),
                Some(token) if token.len() == 36 => {
                    let id = id.to_string();
                    s.app_account_tokens.insert(id, token.to_owned());
                    StatusCode::OK.into_response()
                }
                _ => apple_error(StatusCode::BAD_REQUEST, 4000183),
            }
        }
        ("PUT", ["inApps", "v1", "subscriptions", "extend", id]) => {
            let known = s.transaction_info.contains_key(*id) || s.statuses.contains_key(*id);
            if let Some(code) = extension_problem(&body) {
                return apple_error(StatusCode::BAD_REQUEST, code);
            }
            if !known {
                return apple_error(StatusCode::NOT_FOUND, 4040010);
            }
            let days = body["extendByDays"].as_i64().unwrap_or(0);
            axum::Json(json!({
                "originalTransactionId": id, "webOrderLineItemId": "w-1", "success": true,
                "effectiveDate": now + days * 86_400_000,
            }))
            .into_response()
        }
        ("POST", ["inApps", "v1", "subscriptions", "extend", "mass"]) => {
            if let Some(code) = extension_problem(&body) {
                return apple_error(StatusCode::BAD_REQUEST, code);
            }
            let product = body["productId"].as_str().unwrap_or_default().to_owned();
            let countries_ok = match &body["storefrontCountryCodes"] {
                Value::Null => true,
                Value::Array(codes) => codes
                    .iter()
                    .all(|c| c.as_str().is_some_and(|c| c.len() == 3)),
                _ => false,
            };
            if product.is_empty() || !countries_ok {
                return apple_error(StatusCode::BAD_REQUEST, 4000000);
            }
            let id = body["requestIdentifier"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let polls = s.mass_extension_polls;
            s.mass_extensions.insert(id.clone(), (product, polls));
            axum::Json(json!({"requestIdentifier": id})).into_response()
        }
        ("GET", ["inApps", "v1", "subscriptions", "extend", "mass", product, id]) => {
            match s.mass_extensions.get_mut(*id) {
                Some((asked, left)) if asked == product => {
                    *left = left.saturating_sub(1);
                    let complete = *left == 0;
                    axum::Json(json!({
                        "requestIdentifier": id, "complete": complete,
                        "completeDate": complete.then(now_ms),
                        "succeededCount": complete.then_some(7), "failedCount": complete.then_some(1),
                    }))
                    .into_response()
                }
                _ => apple_error(StatusCode::NOT_FOUND, 4040009),
            }
        }
        ("GET", ["inApps", "v2", "refund", "lookup", id]) => {
            let known = s.transactions.contains_key(*id) || s.statuses.contains_key(*id);
            let Some(list) = s.refunds.get(*id) else {
                // A customer Apple knows, with no refund: an empty page.
                if known {
                    return axum::Json(
                        json!({"signedTransactions": [], "hasMore": false, "revision": "0"}),
                    )
                    .into_response();
                }
                return apple_error(StatusCode::NOT_FOUND, 4040010);
            };
            // One transaction a page: the client must follow `revision`.
            let from: usize = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("revision="))
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            let page: Vec<&String> = list.iter().skip(from).take(1).collect();
            let has_more = from + 1 < list.len();
            axum::Json(json!({
                "signedTransactions": page, "hasMore": has_more,
                "revision": (from + 1).to_string(),
            }))
            .into_response()
        }
        ("PUT", ["inApps", "v2", "transactions", "consumption", id]) => {
            if let Some(status) = s.consumption_failing {
                return apple_error(StatusCode::from_u16(status).unwrap(), 5000000);
            }
            let subscription = s
                .product_types
                .get(*id)
                .is_some_and(|t| t == "Auto-Renewable Subscription");
            if let Some(code) = consumption_problem(&body, subscription) {
                return apple_error(StatusCode::BAD_REQUEST, code);
            }
            StatusCode::ACCEPTED.into_response()
        }
        ("GET", ["inApps", "v1", "transactions", id]) => match s.transaction_info.get(*id) {
            Some(token) => axum::Json(json!({"signedTransactionInfo": token})).into_response(),
            None => apple_error(StatusCode::NOT_FOUND, 4040010),
        },
        ("POST", ["inApps", "v1", "notifications", "test"]) => {
            if let (Some(payload), Some(to)) = (s.test_notification.clone(), s.deliver_to.clone()) {
                s.test_send_attempts =
                    json!([{"attemptDate": now, "sendAttemptResult": "SUCCESS"}]);
                tokio::spawn(async move {
                    let _ = reqwest::Client::new()
                        .post(to)
                        .json(&json!({"signedPayload": payload}))
                        .send()
                        .await;
                });
            }
            axum::Json(json!({"testNotificationToken": "ae0e2185-a3c6-47e4-b41a-6ef4bc86314e_1656062546521"}))
                .into_response()
        }
        ("GET", ["inApps", "v1", "notifications", "test", _]) => axum::Json(json!({
            "signedPayload": s.test_notification,
            "sendAttempts": s.test_send_attempts,
        }))
        .into_response(),
        _ => apple_error(StatusCode::NOT_FOUND, 4040000),
    }
}

/// Apple's rules for an extension's body: extendByDays 1 to 90
/// (4000009), extendReasonCode 0 to 3 (4000010), a requestIdentifier of 1 to
/// 128 characters (4000011).
fn extension_problem(body: &Value) -> Option<i64> {
    if !body["extendByDays"]
        .as_i64()
        .is_some_and(|d| (1..=90).contains(&d))
    {
        return Some(4000009);
    }
    if !body["extendReasonCode"]
        .as_i64()
        .is_some_and(|r| (0..=3).contains(&r))
    {
        return Some(4000010);
    }
    if !body["requestIdentifier"]
        .as_str()
        .is_some_and(|id| (1..=128).contains(&id.chars().count()))
    {
        return Some(4000011);
    }
    None
}

/// Apple's rules for a `ConsumptionRequest`: only its five fields;
/// customerConsented true (4000035); a known deliveryStatus (4000036);
/// sampleContentProvided a boolean (4000041); consumptionPercentage 0 to
/// 100000 in milliunits, none for an auto-renewable subscription, 0 when
/// not delivered; a known refundPreference, GRANT_PRORATED with a
/// percentage above 0 where one is allowed (4000000 for the rest).
fn consumption_problem(body: &Value, subscription: bool) -> Option<i64> {
    let Value::Object(fields) = body else {
        return Some(4000000);
    };
    let known = [
        "customerConsented",
        "consumptionPercentage",
        "deliveryStatus",
        "refundPreference",
        "sampleContentProvided",
    ];
    if fields.keys().any(|k| !known.contains(&k.as_str())) {
        return Some(4000000);
    }
    if body["customerConsented"] != json!(true) {
        return Some(4000035);
    }
    let delivered = match body["deliveryStatus"].as_str() {
        Some("DELIVERED") => true,
        Some(
            "UNDELIVERED_QUALITY_ISSUE"
            | "UNDELIVERED_WRONG_ITEM"
            | "UNDELIVERED_SERVER_OUTAGE"
            | "UNDELIVERED_OTHER",
        ) => false,
        _ => return Some(4000036),
    };
    if !body["sampleContentProvided"].is_boolean() {
        return Some(4000041);
    }
    let percentage = match body.get("consumptionPercentage") {
        None => None,
        Some(p) => match p.as_i64() {
            Some(p) if (0..=100_000).contains(&p) && !subscription && (delivered || p == 0) => {
                Some(p)
            }
            _ => return Some(4000000),
        },
    };
    match body.get("refundPreference").map(|p| p.as_str()) {
        None | Some(Some("GRANT_FULL" | "DECLINE")) => None,
        Some(Some("GRANT_PRORATED")) if subscription || percentage.is_some_and(|p| p > 0) => None,
        _ => Some(4000000),
    }
}

/// Apple's checks of the bearer token.
fn check_token(public_key: &[u8], headers: &HeaderMap, now_ms: i64) -> Result<(), String> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("no bearer token")?;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("not three parts".into());
    };
    let decode = |part: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let (header_json, claims_json) = (decode(header)?, decode(claims)?);
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "bad signature".to_string())?;
    let want = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
    want(header_json["alg"] == "ES256", "alg")?;
    want(header_json["kid"] == KEY_ID, "kid")?;
    want(header_json["typ"] == "JWT", "typ")?;
    want(claims_json["iss"] == ISSUER_ID, "iss")?;
    want(claims_json["aud"] == "appstoreconnect-v1", "aud")?;
    want(claims_json["bid"] == BUNDLE_ID, "bid")?;
    let now = now_ms / 1000;
    let iat = claims_json["iat"].as_i64().ok_or("iat")?;
    let exp = claims_json["exp"].as_i64().ok_or("exp")?;
    want(iat <= now + 60, "iat in the future")?;
    want(exp > now, "expired")?;
    want(exp - iat <= 3600, "lives over 60 minutes")?;
    Ok(())
}

/// The `[apps.api]` section for a key in `dir`, Production at `production`
/// and Sandbox at `sandbox`, plus the schedule (`[appstore_api]`).
pub fn api_config(
    dir: &crate::helpers::TempDir,
    key_pem: &str,
    production: &str,
    sandbox: &str,
    schedule: &str,
) -> String {
    let key = dir.path("SubscriptionKey_2X9R4HXF34.p8");
    std::fs::write(&key, key_pem).unwrap();
    format!(
        r#"
        [apps.api]
        issuer_id = "{ISSUER_ID}"
        key_id = "{KEY_ID}"
        private_key_file = "{}"
        production_url = "{production}"
        sandbox_url = "{sandbox}"
        max_requests_per_second = 50
        [appstore_api]
        {schedule}
        "#,
        key.display()
    )
}
