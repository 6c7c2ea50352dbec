//! Requests and answers of the App Store Server API, in Apple's names.
//! Signed values stay strings here: whoever uses one verifies it first.

use serde::{Deserialize, Serialize};

use crate::model::{DeliveryStatus, RefundPreference, SubscriptionStatus};

/// The body of Get Notification History.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationHistoryRequest {
    /// Milliseconds; inclusive.
    pub start_date: i64,
    /// Milliseconds; exclusive.
    pub end_date: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_subtype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_failures: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationHistoryResponse {
    #[serde(default)]
    pub pagination_token: Option<String>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub notification_history: Vec<NotificationHistoryItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationHistoryItem {
    pub signed_payload: String,
    #[serde(default)]
    pub send_attempts: Vec<SendAttempt>,
}

/// One attempt of Apple's to deliver a notification to our endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendAttempt {
    #[serde(default)]
    pub attempt_date: Option<i64>,
    /// `SUCCESS`, or why it failed (`TIMED_OUT`, `TLS_ISSUE`, ...).
    #[serde(default)]
    pub send_attempt_result: Option<String>,
}

/// Get All Subscription Statuses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub bundle_id: Option<String>,
    #[serde(default)]
    pub app_apple_id: Option<i64>,
    #[serde(default)]
    pub data: Vec<SubscriptionGroupStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroupStatus {
    #[serde(default)]
    pub subscription_group_identifier: Option<String>,
    #[serde(default)]
    pub last_transactions: Vec<LastTransaction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastTransaction {
    #[serde(default)]
    pub status: Option<SubscriptionStatus>,
    #[serde(default)]
    pub original_transaction_id: Option<String>,
    #[serde(default)]
    pub signed_transaction_info: Option<String>,
    #[serde(default)]
    pub signed_renewal_info: Option<String>,
}

/// Get Transaction History (v2): a page of the customer's transactions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryResponse {
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub bundle_id: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub signed_transactions: Vec<String>,
}

/// Get Transaction Info.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionInfoResponse {
    pub signed_transaction_info: String,
}

/// Look Up Order ID: `status` 0 when the order is valid, 1 when not.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLookupResponse {
    pub status: i64,
    #[serde(default)]
    pub signed_transactions: Vec<String>,
}

/// Request a Test Notification.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendTestNotificationResponse {
    pub test_notification_token: String,
}

/// Get Test Notification Status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckTestNotificationResponse {
    #[serde(default)]
    pub signed_payload: Option<String>,
    #[serde(default)]
    pub send_attempts: Vec<SendAttempt>,
}

/// Apple's error body: `{"errorCode": 4040010, "errorMessage": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub(super) error_code: Option<i64>,
    #[serde(default)]
    pub(super) error_message: Option<String>,
}

/// The body of Send Consumption Information (`ConsumptionRequest`): what
/// the developer tells Apple about a purchase the customer asked to have
/// refunded. Apple refuses a `customerConsented` other than true, and a
/// `consumptionPercentage` for an auto-renewable subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumptionRequest {
    pub customer_consented: bool,
    /// Milliunits: 0 to 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumption_percentage: Option<i64>,
    pub delivery_status: DeliveryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_preference: Option<RefundPreference>,
    pub sample_content_provided: bool,
}

/// Why a subscription's renewal date is extended (Apple's
/// `extendReasonCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendReason {
    Undeclared,
    CustomerSatisfaction,
    Other,
    ServiceIssueOrOutage,
}

impl ExtendReason {
    pub const ALL: [ExtendReason; 4] = [
        ExtendReason::Undeclared,
        ExtendReason::CustomerSatisfaction,
        ExtendReason::Other,
        ExtendReason::ServiceIssueOrOutage,
    ];

    /// Apple's code: 0 to 3.
    pub fn code(self) -> i32 {
        match self {
            ExtendReason::Undeclared => 0,
            ExtendReason::CustomerSatisfaction => 1,
            ExtendReason::Other => 2,
            ExtendReason::ServiceIssueOrOutage => 3,
        }
    }

    /// The name the README, the command line and the console use.
    pub fn name(self) -> &'static str {
        match self {
            ExtendReason::Undeclared => "UNDECLARED",
            ExtendReason::CustomerSatisfaction => "CUSTOMER_SATISFACTION",
            ExtendReason::Other => "OTHER",
            ExtendReason::ServiceIssueOrOutage => "SERVICE_ISSUE_OR_OUTAGE",
        }
    }

    /// From its name (any case) or its code.
    pub fn parse(text: &str) -> Option<ExtendReason> {
        let text = text.trim();
        ExtendReason::ALL.into_iter().find(|reason| {
            reason.name().eq_ignore_ascii_case(text) || reason.code().to_string() == text
        })
    }
}

/// The most days Apple extends a renewal date by, in one request.
pub const MAX_EXTEND_BY_DAYS: i32 = 90;
/// The longest `requestIdentifier` Apple takes.
pub const MAX_REQUEST_IDENTIFIER: usize = 128;

/// The body of Extend a Subscription Renewal Date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendRenewalDateRequest {
    /// 1 to [`MAX_EXTEND_BY_DAYS`].
    pub extend_by_days: i32,
    pub extend_reason_code: i32,
    /// Yours, to make the request idempotent: Apple extends once per
    /// identifier.
    pub request_identifier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendRenewalDateResponse {
    #[serde(default)]
    pub original_transaction_id: Option<String>,
    #[serde(default)]
    pub web_order_line_item_id: Option<String>,
    #[serde(default)]
    pub success: Option<bool>,
    /// Milliseconds: the new renewal date, when it succeeded.
    #[serde(default)]
    pub effective_date: Option<i64>,
}

/// The body of Extend Subscription Renewal Dates for All Active Subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MassExtendRenewalDateRequest {
    pub extend_by_days: i32,
    pub extend_reason_code: i32,
    pub request_identifier: String,
    pub product_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storefront_country_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MassExtendRenewalDateResponse {
    #[serde(default)]
    pub request_identifier: Option<String>,
}

/// Get Status of Subscription Renewal Date Extensions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MassExtendRenewalDateStatusResponse {
    #[serde(default)]
    pub request_identifier: Option<String>,
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub complete_date: Option<i64>,
    #[serde(default)]
    pub succeeded_count: Option<i64>,
    #[serde(default)]
    pub failed_count: Option<i64>,
}
