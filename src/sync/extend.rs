//! Goodwill time: Extend a Subscription Renewal Date for one customer, or
//! for every active subscriber of a product (an outage), and the mass
//! request's status until Apple completes it. Apple's RENEWAL_EXTENDED and
//! RENEWAL_EXTENSION notifications then fold into the ledger like any
//! other: the ledger learns the new dates from what Apple signs, never from
//! what was asked.

use std::time::Duration;

use super::reconcile::{candidates, first_that_knows};
use super::SyncError;
use crate::appstore_api::{
    AppStoreApi, Client, ExtendReason, ExtendRenewalDateRequest, MassExtendRenewalDateRequest,
    MassExtendRenewalDateStatusResponse, MAX_EXTEND_BY_DAYS, MAX_REQUEST_IDENTIFIER,
};
use crate::model::Environment;
use crate::store::{ItemQuery, Store};

/// An extension as asked: checked against Apple's rules before Apple is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub days: i32,
    pub reason: ExtendReason,
    /// Apple extends once per identifier: asking again with the same one
    /// (a form sent twice, a command run again) extends nothing more.
    pub request_identifier: String,
}

impl Extension {
    /// `days` 1 to 90, `reason` by name or code, `request_identifier` at
    /// most 128 characters (a new UUID when none is given).
    pub fn new(
        days: i64,
        reason: &str,
        request_identifier: Option<&str>,
    ) -> Result<Extension, SyncError> {
        let days = i32::try_from(days)
            .ok()
            .filter(|d| (1..=MAX_EXTEND_BY_DAYS).contains(d))
            .ok_or_else(|| {
                SyncError::InvalidExtension(format!(
                    "extendByDays must be 1 to {MAX_EXTEND_BY_DAYS}, not {days}"
                ))
            })?;
        let reason = ExtendReason::parse(reason).ok_or_else(|| {
            SyncError::InvalidExtension(format!(
                "extendReasonCode {reason:?} is none of {}",
                ExtendReason::ALL.map(ExtendReason::name).join(", ")
            ))
        })?;
        let request_identifier = match request_identifier.map(str::trim) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => new_request_identifier()?,
        };
        if request_identifier.chars().count() > MAX_REQUEST_IDENTIFIER {
            return Err(SyncError::InvalidExtension(format!(
                "requestIdentifier is longer than {MAX_REQUEST_IDENTIFIER} characters"
            )));
        }
        Ok(Extension {
            days,
            reason,
            request_identifier,
        })
    }
}

/// A random UUID (version 4), from the system's random source: a new
/// extension's identifier, here and in the console's forms.
pub fn new_request_identifier() -> Result<String, SyncError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            SyncError::InvalidExtension("no random source for a requestIdentifier".into())
        })?;
    let mut text = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        let byte = match i {
            6 => (byte & 0x0f) | 0x40,
            8 => (byte & 0x3f) | 0x80,
            _ => *byte,
        };
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push_str(&format!("{byte:02x}"));
    }
    Ok(text)
}

/// What Apple answered for one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extended {
    pub bundle_id: String,
    pub environment: String,
    /// Apple's `success`: false when the subscription was not eligible
    /// (not active, extended too often this year).
    pub success: bool,
    /// The new renewal date, in milliseconds, when it succeeded.
    pub effective_date: Option<i64>,
}

/// Extends `original_transaction_id`'s renewal date: in the app and
/// environment the ledger knows it from, else in the first configured one
/// that knows the transaction.
pub async fn extend_renewal(
    api: &AppStoreApi,
    store: &Store,
    original_transaction_id: &str,
    extension: &Extension,
) -> Result<Extended, SyncError> {
    if api.is_empty() {
        return Err(SyncError::ApiNotConfigured);
    }
    let known = store
        .ledger_items(&ItemQuery::Subscription(original_transaction_id.to_owned()))
        .await?;
    let state = known.first().map(|item| &item.state);
    let request = ExtendRenewalDateRequest {
        extend_by_days: extension.days,
        extend_reason_code: extension.reason.code(),
        request_identifier: extension.request_identifier.clone(),
    };
    let request = &request;
    let found = first_that_knows(candidates(api, state), |client| async move {
        Ok(client
            .extend_subscription_renewal_date(original_transaction_id, request)
            .await?)
    })
    .await?;
    match found {
        Some((client, answer)) => Ok(Extended {
            bundle_id: client.bundle_id().to_owned(),
            environment: client.environment().as_str().to_owned(),
            success: answer.success.unwrap_or(false),
            effective_date: answer.effective_date,
        }),
        None => Err(SyncError::UnknownSubscription(
            original_transaction_id.to_owned(),
        )),
    }
}

/// The client of `bundle_id` (or the only configured app) in
/// `environment` (Production unless named).
pub fn client_for<'a>(
    api: &'a AppStoreApi,
    bundle_id: Option<&str>,
    environment: Option<&str>,
) -> Result<&'a Client, SyncError> {
    if api.is_empty() {
        return Err(SyncError::ApiNotConfigured);
    }
    let environment = Environment::from_raw(environment.unwrap_or("Production"));
    let mut clients = api
        .clients()
        .filter(|c| *c.environment() == environment)
        .filter(|c| bundle_id.is_none_or(|b| c.bundle_id() == b));
    match (clients.next(), clients.next()) {
        (Some(client), None) => Ok(client),
        (None, _) => Err(SyncError::NotConfigured {
            bundle_id: bundle_id.unwrap_or("any app").to_owned(),
            environment: environment.as_str().to_owned(),
        }),
        (Some(_), Some(_)) => Err(SyncError::InvalidExtension(
            "several apps are configured: name one with --bundle-id".to_owned(),
        )),
    }
}

/// Asks Apple to extend every active subscriber of `product_id` (in the
/// storefronts named, or all); Apple answers at once and works for hours.
pub async fn extend_renewal_for_all(
    client: &Client,
    product_id: &str,
    storefront_country_codes: &[String],
    extension: &Extension,
) -> Result<(), SyncError> {
    let request = MassExtendRenewalDateRequest {
        extend_by_days: extension.days,
        extend_reason_code: extension.reason.code(),
        request_identifier: extension.request_identifier.clone(),
        product_id: product_id.to_owned(),
        storefront_country_codes: storefront_country_codes.to_vec(),
    };
    client.extend_renewal_dates_for_all(&request).await?;
    Ok(())
}

/// Asks for the mass extension's status every `interval` until Apple says
/// it is complete, telling `progress` each answer; stops early (with the
/// last answer) when `stop` is cancelled.
pub async fn poll_mass_extension(
    client: &Client,
    product_id: &str,
    request_identifier: &str,
    interval: Duration,
    stop: &crate::stop::Stop,
    mut progress: impl FnMut(&MassExtendRenewalDateStatusResponse),
) -> Result<MassExtendRenewalDateStatusResponse, SyncError> {
    loop {
        let status = client
            .mass_extension_status(product_id, request_identifier)
            .await?;
        progress(&status);
        if status.complete {
            return Ok(status);
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return Ok(status),
        }
    }
}
