//! Stripe: customers and payment intents, and webhook signature checks.
//!
//! Requests are form-encoded with Stripe's bracket notation
//! (`metadata[tenant]=acme`) and authenticated with `Authorization: Bearer
//! sk_...`. Every create carries an `Idempotency-Key` (the caller's, or a
//! fresh UUID per call that stays the same across its retries), so a retried
//! POST never creates a second object: Stripe replays the first answer.
//! Errors come as `{"error": {"type", "code", "message", "param"}}`.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{error_body, Secret};
use crate::client::{HttpError, ResilientHttp};

pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// Stripe's default webhook tolerance.
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(300);
const TARGET: &str = "stripe";

/// Why a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("failed to call stripe")]
    Http(#[from] HttpError),
    #[error("stripe answered {status} {kind}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        status: u16,
        /// `card_error`, `invalid_request_error`, `api_error`, `idempotency_error`, ...
        kind: String,
        code: Option<String>,
        message: String,
        param: Option<String>,
        request_id: Option<String>,
    },
    #[error("failed to decode stripe's answer")]
    Decode(#[source] reqwest::Error),
}

/// A Stripe customer (the fields the services use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Customer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A Stripe payment intent (the fields the services use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub customer: Option<String>,
    pub client_secret: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Parameters of a new customer.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct NewCustomer {
    email: Option<String>,
    name: Option<String>,
    metadata: BTreeMap<String, String>,
    idempotency_key: Option<String>,
}

impl NewCustomer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// A key identifying this creation across calls (e.g. derived from a
    /// lead id), so that a repeated job creates one customer.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    fn form(&self) -> Vec<(String, String)> {
        let mut form = Vec::new();
        push(&mut form, "email", self.email.as_deref());
        push(&mut form, "name", self.name.as_deref());
        push_metadata(&mut form, &self.metadata);
        form
    }
}

/// Parameters of a new payment intent.
#[derive(Debug, Clone)]
#[must_use]
pub struct NewPaymentIntent {
    amount: i64,
    currency: String,
    customer: Option<String>,
    description: Option<String>,
    metadata: BTreeMap<String, String>,
    idempotency_key: Option<String>,
}

impl NewPaymentIntent {
    /// `amount` in the currency's smallest unit (cents), `currency` lower-case ISO (`eur`).
    pub fn new(amount: i64, currency: impl Into<String>) -> Self {
        Self {
            amount,
            currency: currency.into(),
            customer: None,
            description: None,
            metadata: BTreeMap::new(),
            idempotency_key: None,
        }
    }

    pub fn customer(mut self, id: impl Into<String>) -> Self {
        self.customer = Some(id.into());
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// See [`NewCustomer::idempotency_key`].
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    fn form(&self) -> Vec<(String, String)> {
        let mut form = vec![
            ("amount".to_owned(), self.amount.to_string()),
            ("currency".to_owned(), self.currency.clone()),
        ];
        push(&mut form, "customer", self.customer.as_deref());
        push(&mut form, "description", self.description.as_deref());
        push_metadata(&mut form, &self.metadata);
        form
    }
}

fn push(form: &mut Vec<(String, String)>, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        form.push((key.to_owned(), value.to_owned()));
    }
}

fn push_metadata(form: &mut Vec<(String, String)>, metadata: &BTreeMap<String, String>) {
    for (k, v) in metadata {
        form.push((format!("metadata[{k}]"), v.clone()));
    }
}

/// The Stripe API client.
#[derive(Debug, Clone)]
pub struct StripeClient {
    http: ResilientHttp,
    base_url: String,
    secret_key: Secret,
}

impl StripeClient {
    pub fn new(http: ResilientHttp, base_url: &str, secret_key: String) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret_key: Secret(secret_key),
        }
    }

    /// `POST /v1/customers`.
    ///
    /// # Errors
    /// [`StripeError`].
    pub async fn create_customer(&self, customer: &NewCustomer) -> Result<Customer, StripeError> {
        self.create(
            "stripe.customers.create",
            "/v1/customers",
            customer.form(),
            customer.idempotency_key.as_deref(),
        )
        .await
    }

    /// `POST /v1/payment_intents`.
    ///
    /// # Errors
    /// [`StripeError`].
    pub async fn create_payment_intent(
        &self,
        intent: &NewPaymentIntent,
    ) -> Result<PaymentIntent, StripeError> {
        self.create(
            "stripe.paymentIntents.create",
            "/v1/payment_intents",
            intent.form(),
            intent.idempotency_key.as_deref(),
        )
        .await
    }

    /// `operation` names the call in its span (`stripe.customers.create`).
    async fn create<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
        path: &str,
        form: Vec<(String, String)>,
        key: Option<&str>,
    ) -> Result<T, StripeError> {
        let key = key.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let request = self
            .http
            .client()
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(self.secret_key.expose())
            .header("idempotency-key", key)
            .form(&form);
        let response = self.http.send(TARGET, operation, request).await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        response.json().await.map_err(StripeError::Decode)
    }
}

async fn api_error(response: reqwest::Response) -> StripeError {
    let request_id = response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, json, text) = error_body(response).await;
    let error = &json["error"];
    let field = |name: &str| error[name].as_str().map(str::to_owned);
    StripeError::Api {
        status: status.as_u16(),
        kind: field("type").unwrap_or_else(|| "unknown".into()),
        code: field("code"),
        message: field("message").unwrap_or(text),
        param: field("param"),
        request_id,
    }
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("failed to parse the Stripe-Signature header: {0}")]
    MalformedHeader(&'static str),
    #[error("no v1 signature of the Stripe-Signature header matches the payload")]
    NoMatchingSignature,
    #[error("the webhook timestamp is {age_secs}s away from now (tolerance {tolerance_secs}s)")]
    OutsideTolerance { age_secs: i64, tolerance_secs: u64 },
}

/// Checks a `Stripe-Signature` header (`t=<unix>,v1=<hex>[,v1=...][,v0=...]`)
/// for `payload` (the raw request body) signed with the endpoint's `secret`:
/// some `v1` must equal HMAC-SHA256(secret, `"{t}.{payload}"`) (compared in
/// constant time), and `t` must be within `tolerance` of `now` (unix
/// seconds; [`WEBHOOK_TOLERANCE`] is Stripe's default). Returns `t`.
///
/// # Errors
/// [`WebhookError`].
pub fn verify_webhook(
    secret: &str,
    signature_header: &str,
    payload: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<i64, WebhookError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in signature_header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(WebhookError::MalformedHeader("an element is not key=value"));
        };
        match key {
            "t" => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| WebhookError::MalformedHeader("t is not a unix timestamp"))?;
                timestamp = Some(t);
            }
            // A v1 that is not hex cannot match; skip it like Stripe's libraries.
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedHeader("no timestamp (t=)"))?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedHeader("no v1 signature"));
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let matches = signatures
        .iter()
        .any(|signature| mac.clone().verify_slice(signature).is_ok());
    if !matches {
        return Err(WebhookError::NoMatchingSignature);
    }
    let age = now.saturating_sub(timestamp);
    let tolerance_secs = tolerance.as_secs();
    if age.unsigned_abs() > tolerance_secs {
        return Err(WebhookError::OutsideTolerance {
            age_secs: age,
            tolerance_secs,
        });
    }
    Ok(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const PAYLOAD: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    const NOW: i64 = 1_700_000_000;

    fn sign(secret: &str, t: i64, payload: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(header: &str) -> Result<i64, WebhookError> {
        verify_webhook(SECRET, header, PAYLOAD, NOW, WEBHOOK_TOLERANCE)
    }

    #[test]
    fn a_good_signature_verifies() {
        let header = format!("t={NOW},v1={}", sign(SECRET, NOW, PAYLOAD));
        assert_eq!(verify(&header), Ok(NOW));
    }

    #[test]
    fn any_of_several_v1_signatures_may_match() {
        let header = format!(
            "t={NOW},v1={},v1={},v0=ignored",
            sign("whsec_old", NOW, PAYLOAD),
            sign(SECRET, NOW, PAYLOAD)
        );
        assert_eq!(verify(&header), Ok(NOW));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let header = format!("t={NOW},v1={}", sign(SECRET, NOW, PAYLOAD));
        let tampered = br#"{"id":"evt_1","type":"payment_intent.failed"}"#;
        assert_eq!(
            verify_webhook(SECRET, &header, tampered, NOW, WEBHOOK_TOLERANCE),
            Err(WebhookError::NoMatchingSignature)
        );
        // Signed for another timestamp than the header claims.
        let header = format!("t={NOW},v1={}", sign(SECRET, NOW - 1, PAYLOAD));
        assert_eq!(verify(&header), Err(WebhookError::NoMatchingSignature));
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let header = format!("t={NOW},v1={}", sign("whsec_other", NOW, PAYLOAD));
        assert_eq!(verify(&header), Err(WebhookError::NoMatchingSignature));
    }

    #[test]
    fn a_stale_timestamp_is_refused() {
        let t = NOW - 301;
        let header = format!("t={t},v1={}", sign(SECRET, t, PAYLOAD));
        let error = verify(&header).unwrap_err();
        assert_eq!(
            error,
            WebhookError::OutsideTolerance {
                age_secs: 301,
                tolerance_secs: 300
            }
        );
        assert_eq!(
            error.to_string(),
            "the webhook timestamp is 301s away from now (tolerance 300s)"
        );
        let t = NOW - 300;
        let header = format!("t={t},v1={}", sign(SECRET, t, PAYLOAD));
        assert_eq!(verify(&header), Ok(t));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = sign(SECRET, NOW, PAYLOAD);
        for (header, expected) in [
            (String::new(), "an element is not key=value"),
            (format!("v1={good}"), "no timestamp (t=)"),
            (format!("t={NOW}"), "no v1 signature"),
            (format!("t={NOW},v0={good}"), "no v1 signature"),
            (
                format!("t=yesterday,v1={good}"),
                "t is not a unix timestamp",
            ),
            (format!("t={NOW};v1={good}"), "t is not a unix timestamp"),
        ] {
            assert_eq!(
                verify(&header),
                Err(WebhookError::MalformedHeader(expected)),
                "{header}"
            );
        }
        // A v1 that is not hex is skipped; with no other it cannot match.
        assert_eq!(
            verify(&format!("t={NOW},v1=zz")),
            Err(WebhookError::MalformedHeader("no v1 signature"))
        );
    }

    #[test]
    fn forms_use_bracket_notation() {
        let form = NewPaymentIntent::new(2000, "eur")
            .customer("cus_1")
            .metadata("tenant", "acme")
            .form();
        assert_eq!(
            form,
            [
                ("amount".into(), "2000".into()),
                ("currency".into(), "eur".into()),
                ("customer".into(), "cus_1".into()),
                ("metadata[tenant]".into(), "acme".into()),
            ]
        );
    }
}
