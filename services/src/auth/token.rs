//! Short-lived HS256 tokens for calls between services.
//!
//! A service calling another on behalf of a tenant signs a token naming
//! itself (`iss`, also the `app` looked up in the permission matrix), the
//! target (`aud`), the tenant (`sub`), the scope it needs and a 60-second
//! expiry. The receiver checks signature, audience, expiry and that the
//! tenant matches `x-tenant-id`: a token captured for one tenant or service
//! is worthless for another.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::ServiceName;

/// How long a cross-app token is valid.
pub const TOKEN_TTL_SECS: i64 = 60;

/// The claims of a cross-app token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossAppClaims {
    /// The calling service.
    pub iss: String,
    /// The called service.
    pub aud: String,
    /// The tenant the call is made for.
    pub sub: String,
    /// The app whose request caused the call, for audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_app: Option<String>,
    /// Space-separated permissions requested.
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Signing and verification keys from the shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    inner: Arc<(EncodingKey, DecodingKey)>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(…)")
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid cross-app token: {0}")]
pub struct TokenError(#[from] jsonwebtoken::errors::Error);

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            inner: Arc::new((
                EncodingKey::from_secret(secret),
                DecodingKey::from_secret(secret),
            )),
        }
    }

    /// Signs a token for a call from `source` to `target` for `tenant`.
    pub fn issue(
        &self,
        source: ServiceName,
        target: ServiceName,
        tenant: &str,
        origin_app: Option<&str>,
        scope: &[&str],
        now: i64,
    ) -> Result<String, TokenError> {
        let claims = CrossAppClaims {
            iss: source.as_str().to_owned(),
            aud: target.as_str().to_owned(),
            sub: tenant.to_owned(),
            origin_app: origin_app.map(str::to_owned),
            scope: scope.join(" "),
            iat: now,
            exp: now + TOKEN_TTL_SECS,
            jti: Uuid::new_v4().to_string(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.inner.0,
        )?)
    }

    /// Verifies a token presented to `audience`.
    pub fn verify(&self, token: &str, audience: ServiceName) -> Result<CrossAppClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud", "sub", "iss"]);
        validation.leeway = 5;
        Ok(jsonwebtoken::decode::<CrossAppClaims>(token, &self.inner.1, &validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn a_token_verifies_for_its_audience_only() {
        let keys = TokenKeys::new(b"secret");
        let token = keys
            .issue(
                ServiceName::FlowApi,
                ServiceName::CrmApi,
                "acme",
                Some("flow-web"),
                &["read:contacts"],
                now(),
            )
            .unwrap();
        let claims = keys.verify(&token, ServiceName::CrmApi).unwrap();
        assert_eq!(claims.sub, "acme");
        assert_eq!(claims.iss, "flow-api");
        assert_eq!(claims.scope, "read:contacts");
        assert!(keys.verify(&token, ServiceName::SecurePlatform).is_err());
    }

    #[test]
    fn expired_forged_and_tampered_tokens_are_refused() {
        let keys = TokenKeys::new(b"secret");
        let old = keys
            .issue(
                ServiceName::FlowApi,
                ServiceName::CrmApi,
                "acme",
                None,
                &[],
                now() - 3600,
            )
            .unwrap();
        assert!(keys.verify(&old, ServiceName::CrmApi).is_err());
        let forged = TokenKeys::new(b"other")
            .issue(
                ServiceName::FlowApi,
                ServiceName::CrmApi,
                "acme",
                None,
                &[],
                now(),
            )
            .unwrap();
        assert!(keys.verify(&forged, ServiceName::CrmApi).is_err());
        let good = keys
            .issue(
                ServiceName::FlowApi,
                ServiceName::CrmApi,
                "acme",
                None,
                &[],
                now(),
            )
            .unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"iss":"flow-api","aud":"crm-api","sub":"globex","scope":"","iat":0,"exp":99999999999,"jti":"x"}"#,
        );
        parts[1] = &evil;
        assert!(keys.verify(&parts.join("."), ServiceName::CrmApi).is_err());
    }
}
