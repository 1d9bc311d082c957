//! Microsoft Graph: app-only mail access for one mailbox.
//!
//! Authentication is the OAuth2 client-credentials grant against the
//! identity platform (`POST {login}/{tenant}/oauth2/v2.0/token`,
//! form-encoded, scope `https://graph.microsoft.com/.default`). The token is
//! cached until a minute before it expires (half its lifetime if shorter),
//! and dropped when Graph answers 401, so a revoked token is replaced on the
//! next call. Paging follows the absolute `@odata.nextLink` to the end, but
//! only on the configured Graph origin: the bearer token never goes to a
//! host a response names. Errors are Graph's `{"error": {"code", "message",
//! "innerError": {"request-id", ...}}}`, or the identity platform's
//! `{"error", "error_description"}` for the token.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{error_body, Secret};
use crate::client::{HttpError, ResilientHttp};

pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com";
pub const DEFAULT_LOGIN_BASE_URL: &str = "https://login.microsoftonline.com";
const SCOPE: &str = "https://graph.microsoft.com/.default";
const TARGET: &str = "graph";
/// Pages followed at most, against a server that links in circles.
const MAX_PAGES: usize = 1_000;

/// Why a Graph call failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("failed to call microsoft graph")]
    Http(#[from] HttpError),
    #[error("failed to get a graph token: {status} {error}: {description}")]
    Token {
        status: u16,
        error: String,
        description: String,
    },
    #[error("graph answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    #[error("failed to decode graph's answer")]
    Decode(#[source] reqwest::Error),
    #[error("failed to build a graph URL from {0}")]
    Url(String),
    #[error("graph's @odata.nextLink {0} leaves the configured graph origin; not following it")]
    ForeignLink(String),
}

/// Where Graph is and who the app is.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub base_url: String,
    pub login_base_url: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// User id or address whose mail is read and sent as.
    pub mailbox: String,
}

/// An email address with its display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAddress {
    #[serde(default)]
    pub name: Option<String>,
    pub address: String,
}

/// A recipient or sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: EmailAddress,
}

/// A message body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    /// `text` or `html`.
    pub content_type: String,
    pub content: String,
}

/// A message of the mailbox (the fields the services use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailMessage {
    pub id: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub body_preview: Option<String>,
    #[serde(default)]
    pub body: Option<ItemBody>,
    #[serde(default)]
    pub from: Option<Recipient>,
    #[serde(default)]
    pub to_recipients: Vec<Recipient>,
    #[serde(default)]
    pub received_date_time: Option<String>,
    #[serde(default)]
    pub is_read: Option<bool>,
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// A mail to send from the mailbox.
#[derive(Debug, Clone)]
#[must_use]
pub struct OutgoingMail {
    subject: String,
    body: String,
    html: bool,
    to: Vec<String>,
}

impl OutgoingMail {
    /// A plain-text mail.
    pub fn text(subject: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            body: body.into(),
            html: false,
            to: Vec::new(),
        }
    }

    /// An HTML mail.
    pub fn html(subject: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            html: true,
            ..Self::text(subject, body)
        }
    }

    pub fn to(mut self, address: impl Into<String>) -> Self {
        self.to.push(address.into());
        self
    }

    fn json(&self) -> Value {
        let to: Vec<Value> = self
            .to
            .iter()
            .map(|a| json!({ "emailAddress": { "address": a } }))
            .collect();
        json!({
            "message": {
                "subject": self.subject,
                "body": { "contentType": if self.html { "HTML" } else { "Text" }, "content": self.body },
                "toRecipients": to,
            },
            "saveToSentItems": true,
        })
    }
}

#[derive(Debug)]
struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

/// The Graph client of one app registration and mailbox.
#[derive(Debug)]
pub struct GraphClient {
    http: ResilientHttp,
    base: Url,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    mailbox: String,
    page_size: u32,
    token: Mutex<Option<CachedToken>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds; a number, though some endpoints send it as a string.
    expires_in: Value,
}

#[derive(Deserialize)]
struct Page {
    value: Vec<MailMessage>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

impl GraphClient {
    pub fn new(http: ResilientHttp, config: GraphConfig) -> Self {
        let base = Url::parse(config.base_url.trim_end_matches('/'))
            .unwrap_or_else(|_| Url::parse(DEFAULT_BASE_URL).expect("a valid URL literal"));
        let token_url = format!(
            "{}/{}/oauth2/v2.0/token",
            config.login_base_url.trim_end_matches('/'),
            config.tenant_id
        );
        Self {
            http,
            base,
            token_url,
            client_id: config.client_id,
            client_secret: Secret(config.client_secret),
            mailbox: config.mailbox,
            page_size: 50,
            token: Mutex::new(None),
        }
    }

    /// Messages asked for per page (`$top`, default 50).
    #[must_use]
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// An access token, from the cache or freshly requested.
    async fn token(&self) -> Result<String, GraphError> {
        let mut cached = self.token.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.expose().to_owned());
        }
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("scope", SCOPE),
            ("grant_type", "client_credentials"),
        ];
        let request = self.http.client().post(&self.token_url).form(&form);
        // Asking for a token again has no further effect.
        let response = self
            .http
            .send_idempotent(TARGET, "graph.token", request)
            .await?;
        if !response.status().is_success() {
            let (status, json, text) = error_body(response).await;
            return Err(GraphError::Token {
                status: status.as_u16(),
                error: json["error"].as_str().unwrap_or("unknown").to_owned(),
                description: json["error_description"]
                    .as_str()
                    .map_or(text, str::to_owned),
            });
        }
        let token: TokenResponse = response.json().await.map_err(GraphError::Decode)?;
        let lifetime = token
            .expires_in
            .as_u64()
            .or_else(|| token.expires_in.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
        let lifetime = Duration::from_secs(lifetime);
        let margin = Duration::from_secs(60).min(lifetime / 2);
        *cached = Some(CachedToken {
            token: Secret(token.access_token.clone()),
            refresh_at: Instant::now() + (lifetime - margin),
        });
        Ok(token.access_token)
    }

    fn url(&self, segments: &[&str]) -> Result<Url, GraphError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| GraphError::Url(self.base.to_string()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends an authenticated request; non-2xx answers become [`GraphError::Api`].
    /// `operation` names the call in its span (`graph.sendMail`).
    async fn send(
        &self,
        operation: &str,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GraphError> {
        let token = self.token().await?;
        let response = self.http.send(TARGET, operation, request(&token)).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        if response.status() == StatusCode::UNAUTHORIZED {
            *self.token.lock().await = None;
        }
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, json, text) = error_body(response).await;
        let error = &json["error"];
        Err(GraphError::Api {
            status: status.as_u16(),
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"].as_str().map_or(text, str::to_owned),
            request_id: error["innerError"]["request-id"]
                .as_str()
                .map(str::to_owned)
                .or(request_id),
        })
    }

    /// Every message of the mailbox, following `@odata.nextLink` to the end.
    ///
    /// # Errors
    /// [`GraphError`].
    pub async fn list_messages(&self) -> Result<Vec<MailMessage>, GraphError> {
        let mut url = self.url(&["v1.0", "users", &self.mailbox, "messages"])?;
        url.query_pairs_mut()
            .append_pair("$top", &self.page_size.to_string());
        let mut messages = Vec::new();
        for _ in 0..MAX_PAGES {
            let page_url = url.clone();
            let response = self
                .send("graph.listMessages", |token| {
                    self.http.client().get(page_url.clone()).bearer_auth(token)
                })
                .await?;
            let page: Page = response.json().await.map_err(GraphError::Decode)?;
            messages.extend(page.value);
            let Some(next) = page.next_link else {
                return Ok(messages);
            };
            let next_url = Url::parse(&next).map_err(|_| GraphError::Url(next.clone()))?;
            if next_url.origin() != self.base.origin() {
                return Err(GraphError::ForeignLink(next));
            }
            url = next_url;
        }
        Ok(messages)
    }

    /// Sends `mail` as the mailbox (`POST /users/{id}/sendMail`, saved to
    /// Sent Items). Not retried after an ambiguous failure: Graph has no
    /// idempotency key, and a mail must not go out twice.
    ///
    /// # Errors
    /// [`GraphError`].
    pub async fn send_mail(&self, mail: &OutgoingMail) -> Result<(), GraphError> {
        let url = self.url(&["v1.0", "users", &self.mailbox, "sendMail"])?;
        let body = mail.json();
        self.send("graph.sendMail", |token| {
            self.http
                .client()
                .post(url.clone())
                .bearer_auth(token)
                .json(&body)
        })
        .await?;
        Ok(())
    }
}
