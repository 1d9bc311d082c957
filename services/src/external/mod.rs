//! Typed clients of the external APIs the services use: Gemini (function
//! calling), Microsoft Graph (mail) and Stripe (customers, payments,
//! webhooks).
//!
//! They speak the real APIs' wire formats, so the same code runs against
//! production and against `tekup-mocks`; only the base URLs differ. All of
//! them send through the service's [`ResilientHttp`], so they share its
//! retry policy, get a circuit breaker per API (`gemini`, `graph`,
//! `stripe`) and show up in `cross_app_requests_total`.
//!
//! An API without credentials is simply not configured: [`External`] then
//! answers [`NotConfigured`] naming the variable to set, and the service
//! runs without that feature.

pub mod gemini;
pub mod graph;
pub mod stripe;

use std::fmt;

use clap::Args;

use crate::client::ResilientHttp;

pub use gemini::{FunctionDeclaration, GeminiClient, GeminiError, GeminiReply, Prompt};
pub use graph::{GraphClient, GraphError, MailMessage, OutgoingMail};
pub use stripe::{
    verify_webhook, Customer, NewCustomer, NewPaymentIntent, PaymentIntent, StripeClient,
    StripeError, WebhookError,
};

/// Where the external APIs are and the credentials to call them.
#[derive(Clone, Args)]
pub struct ExternalApis {
    /// Base URL of the Gemini API.
    #[arg(long, env = "GEMINI_BASE_URL", default_value = gemini::DEFAULT_BASE_URL)]
    pub gemini_base_url: String,
    /// Gemini API key; Gemini features are off without it.
    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<String>,
    /// Gemini model for function calling.
    #[arg(long, env = "GEMINI_MODEL", default_value = gemini::DEFAULT_MODEL)]
    pub gemini_model: String,

    /// Base URL of the OpenAI API.
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com"
    )]
    pub openai_base_url: String,

    /// Base URL of Microsoft Graph (without `/v1.0`).
    #[arg(long, env = "GRAPH_BASE_URL", default_value = graph::DEFAULT_BASE_URL)]
    pub graph_base_url: String,
    /// Base URL of the Microsoft identity platform (token endpoint).
    #[arg(long, env = "GRAPH_LOGIN_BASE_URL", default_value = graph::DEFAULT_LOGIN_BASE_URL)]
    pub graph_login_base_url: String,
    /// Entra ID tenant of the Graph app registration.
    #[arg(long, env = "GRAPH_TENANT_ID", hide_env_values = true)]
    pub graph_tenant_id: Option<String>,
    /// Client id of the Graph app registration.
    #[arg(long, env = "GRAPH_CLIENT_ID", hide_env_values = true)]
    pub graph_client_id: Option<String>,
    /// Client secret of the Graph app registration.
    #[arg(long, env = "GRAPH_CLIENT_SECRET", hide_env_values = true)]
    pub graph_client_secret: Option<String>,
    /// User id or address whose mail is read and sent as.
    #[arg(long, env = "GRAPH_MAILBOX", hide_env_values = true)]
    pub graph_mailbox: Option<String>,

    /// Base URL of the Stripe API.
    #[arg(long, env = "STRIPE_BASE_URL", default_value = stripe::DEFAULT_BASE_URL)]
    pub stripe_base_url: String,
    /// Stripe secret key (`sk_...`); payment features are off without it.
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// Signing secret of the Stripe webhook endpoint (`whsec_...`).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
}

impl Default for ExternalApis {
    fn default() -> Self {
        Self {
            gemini_base_url: gemini::DEFAULT_BASE_URL.into(),
            gemini_api_key: None,
            gemini_model: gemini::DEFAULT_MODEL.into(),
            openai_base_url: "https://api.openai.com".into(),
            graph_base_url: graph::DEFAULT_BASE_URL.into(),
            graph_login_base_url: graph::DEFAULT_LOGIN_BASE_URL.into(),
            graph_tenant_id: None,
            graph_client_id: None,
            graph_client_secret: None,
            graph_mailbox: None,
            stripe_base_url: stripe::DEFAULT_BASE_URL.into(),
            stripe_secret_key: None,
            stripe_webhook_secret: None,
        }
    }
}

/// Secrets are shown as set or not, never their value.
impl fmt::Debug for ExternalApis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("ExternalApis")
            .field("gemini_base_url", &self.gemini_base_url)
            .field("gemini_api_key", &secret(&self.gemini_api_key))
            .field("gemini_model", &self.gemini_model)
            .field("openai_base_url", &self.openai_base_url)
            .field("graph_base_url", &self.graph_base_url)
            .field("graph_login_base_url", &self.graph_login_base_url)
            .field("graph_tenant_id", &self.graph_tenant_id)
            .field("graph_client_id", &self.graph_client_id)
            .field("graph_client_secret", &secret(&self.graph_client_secret))
            .field("graph_mailbox", &self.graph_mailbox)
            .field("stripe_base_url", &self.stripe_base_url)
            .field("stripe_secret_key", &secret(&self.stripe_secret_key))
            .field(
                "stripe_webhook_secret",
                &secret(&self.stripe_webhook_secret),
            )
            .finish()
    }
}

/// A feature needs an external API whose credentials are missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{api} is not configured: set {missing}")]
pub struct NotConfigured {
    pub api: &'static str,
    /// The environment variables to set, e.g. `GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET`.
    pub missing: String,
}

impl NotConfigured {
    fn check(api: &'static str, vars: &[(&str, &Option<String>)]) -> Result<(), Self> {
        let missing: Vec<&str> = vars
            .iter()
            .filter(|(_, v)| v.as_deref().is_none_or(str::is_empty))
            .map(|(name, _)| *name)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Self {
                api,
                missing: missing.join(", "),
            })
        }
    }
}

/// A credential; `Debug` does not show it.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The external API clients of a service, each present when configured.
#[derive(Debug)]
pub struct External {
    gemini: Result<GeminiClient, NotConfigured>,
    graph: Result<GraphClient, NotConfigured>,
    stripe: Result<StripeClient, NotConfigured>,
    stripe_webhook_secret: Result<Secret, NotConfigured>,
}

impl External {
    /// Builds the clients `apis` has credentials for, sending through `http`.
    pub fn new(apis: &ExternalApis, http: &ResilientHttp) -> Self {
        let gemini = NotConfigured::check("gemini", &[("GEMINI_API_KEY", &apis.gemini_api_key)])
            .map(|()| {
                GeminiClient::new(
                    http.clone(),
                    &apis.gemini_base_url,
                    apis.gemini_api_key.clone().unwrap_or_default(),
                    &apis.gemini_model,
                )
            });
        let graph = NotConfigured::check(
            "graph",
            &[
                ("GRAPH_TENANT_ID", &apis.graph_tenant_id),
                ("GRAPH_CLIENT_ID", &apis.graph_client_id),
                ("GRAPH_CLIENT_SECRET", &apis.graph_client_secret),
                ("GRAPH_MAILBOX", &apis.graph_mailbox),
            ],
        )
        .map(|()| {
            GraphClient::new(
                http.clone(),
                graph::GraphConfig {
                    base_url: apis.graph_base_url.clone(),
                    login_base_url: apis.graph_login_base_url.clone(),
                    tenant_id: apis.graph_tenant_id.clone().unwrap_or_default(),
                    client_id: apis.graph_client_id.clone().unwrap_or_default(),
                    client_secret: apis.graph_client_secret.clone().unwrap_or_default(),
                    mailbox: apis.graph_mailbox.clone().unwrap_or_default(),
                },
            )
        });
        let stripe =
            NotConfigured::check("stripe", &[("STRIPE_SECRET_KEY", &apis.stripe_secret_key)]).map(
                |()| {
                    StripeClient::new(
                        http.clone(),
                        &apis.stripe_base_url,
                        apis.stripe_secret_key.clone().unwrap_or_default(),
                    )
                },
            );
        let stripe_webhook_secret = NotConfigured::check(
            "stripe webhooks",
            &[("STRIPE_WEBHOOK_SECRET", &apis.stripe_webhook_secret)],
        )
        .map(|()| Secret(apis.stripe_webhook_secret.clone().unwrap_or_default()));
        Self {
            gemini,
            graph,
            stripe,
            stripe_webhook_secret,
        }
    }

    /// No external API configured.
    pub fn none(http: &ResilientHttp) -> Self {
        Self::new(&ExternalApis::default(), http)
    }

    /// # Errors
    /// [`NotConfigured`] without `GEMINI_API_KEY`.
    pub fn gemini(&self) -> Result<&GeminiClient, NotConfigured> {
        self.gemini.as_ref().map_err(Clone::clone)
    }

    /// # Errors
    /// [`NotConfigured`] naming the missing `GRAPH_*` variables.
    pub fn graph(&self) -> Result<&GraphClient, NotConfigured> {
        self.graph.as_ref().map_err(Clone::clone)
    }

    /// # Errors
    /// [`NotConfigured`] without `STRIPE_SECRET_KEY`.
    pub fn stripe(&self) -> Result<&StripeClient, NotConfigured> {
        self.stripe.as_ref().map_err(Clone::clone)
    }

    /// The webhook signing secret, for [`verify_webhook`].
    ///
    /// # Errors
    /// [`NotConfigured`] without `STRIPE_WEBHOOK_SECRET`.
    pub fn stripe_webhook_secret(&self) -> Result<&str, NotConfigured> {
        self.stripe_webhook_secret
            .as_ref()
            .map(Secret::expose)
            .map_err(Clone::clone)
    }
}

/// Reads an API's error body, keeping the raw text when it is not JSON.
pub(crate) async fn error_body(
    response: reqwest::Response,
) -> (reqwest::StatusCode, serde_json::Value, String) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, json, text)
}

#[cfg(test)]
mod mock_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_credentials_are_named() {
        let apis = ExternalApis {
            graph_tenant_id: Some("t".into()),
            graph_client_secret: Some(String::new()),
            ..ExternalApis::default()
        };
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        let resilience = std::sync::Arc::new(crate::resilience::Resilience::from_args(
            &crate::resilience::ResilienceArgs::default(),
            metrics.circuit_breaker_state.clone(),
        ));
        let external = External::new(&apis, &ResilientHttp::new("flow-api", metrics, resilience));
        assert_eq!(
            external.graph().unwrap_err().to_string(),
            "graph is not configured: set GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET, GRAPH_MAILBOX"
        );
        assert_eq!(
            external.stripe().unwrap_err().to_string(),
            "stripe is not configured: set STRIPE_SECRET_KEY"
        );
        assert!(external.gemini().is_err());
        let shown = format!("{apis:?}");
        assert!(!shown.contains("Some(\"\")"), "{shown}");
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let apis = ExternalApis {
            stripe_secret_key: Some("sk_test_verysecret".into()),
            ..ExternalApis::default()
        };
        assert!(!format!("{apis:?}").contains("verysecret"));
        assert_eq!(format!("{:?}", Secret("x".into())), "Secret(***)");
    }
}
