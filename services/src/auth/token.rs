//! Short-lived HS256 tokens for calls between services.
//!
//! A service calling another on behalf of a tenant signs a token naming
//! itself (`iss`, also the `app` looked up in the permission matrix), the
//! target (`aud`), the tenant (`sub`), the scope it needs and a 60-second
//! expiry. The receiver checks signature, audience, expiry and that the
//! tenant matches `x-tenant-id`: a token captured for one tenant or service
//! is worthless for another.
//!
//! The receiver also holds the token to the platform's rules
//! (`tokens:` of `fixtures/platform.yaml`) rather than to what the token
//! says of itself: a validly signed token is still refused when it claims
//! a lifetime over [`MAX_LIFETIME_SECS`] (plus [`LEEWAY_SECS`]), was
//! issued ahead of the receiver's clock beyond the leeway, lacks `iat` or
//! `jti`, or names an issuer that is not a service identity. A leaked
//! signing path could otherwise mint a token valid for a century, or one
//! "issued" as an app that borrows that app's grants.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::ServiceName;

/// How long a cross-app token is valid.
pub const TOKEN_TTL_SECS: i64 = 60;
/// The longest lifetime (`exp - iat`) a receiver accepts.
pub const MAX_LIFETIME_SECS: i64 = 60;
/// Clock skew allowed on `exp`, and on an `iat` ahead of the receiver's clock.
pub const LEEWAY_SECS: i64 = 5;

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
pub enum TokenError {
    #[error("invalid cross-app token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("invalid cross-app token: {0}")]
    Rule(String),
}

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

    /// Verifies a token presented to `audience`, now.
    pub fn verify(&self, token: &str, audience: ServiceName) -> Result<CrossAppClaims, TokenError> {
        self.verify_at(token, audience, chrono::Utc::now().timestamp())
    }

    /// Verifies a token presented to `audience` at `now` (unix seconds):
    /// signature (HS256 only), audience, expiry, then the platform's rules
    /// on lifetime, issue time, issuer and token id.
    pub fn verify_at(
        &self,
        token: &str,
        audience: ServiceName,
        now: i64,
    ) -> Result<CrossAppClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud", "sub", "iss"]);
        // Expiry is checked below against `now`, with the same leeway.
        validation.validate_exp = false;
        let claims =
            jsonwebtoken::decode::<CrossAppClaims>(token, &self.inner.1, &validation)?.claims;
        let refuse = |why: String| Err(TokenError::Rule(why));
        if claims.exp + LEEWAY_SECS < now {
            return refuse(format!("expired {}s ago", now - claims.exp));
        }
        if !crate::defects::active("token-no-lifetime-cap") {
            let lifetime = claims.exp.saturating_sub(claims.iat);
            if lifetime > MAX_LIFETIME_SECS + LEEWAY_SECS {
                return refuse(format!(
                    "lifetime {lifetime}s is over the {MAX_LIFETIME_SECS}s ceiling"
                ));
            }
            if claims.iat > now + LEEWAY_SECS {
                return refuse(format!(
                    "issued {}s in the future",
                    claims.iat.saturating_sub(now)
                ));
            }
        }
        if !super::SERVICE_IDENTITIES.contains(&claims.iss.as_str()) {
            return refuse(format!("issuer `{}` is not a service identity", claims.iss));
        }
        if claims.jti.trim().is_empty() {
            return refuse("empty `jti`".to_owned());
        }
        Ok(claims)
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

    /// A token of `claims` (any JSON) signed with `alg` and `secret`.
    fn signed(claims: &serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn claims(iat: i64, exp: i64) -> serde_json::Value {
        serde_json::json!({
            "iss": "flow-api", "aud": "crm-api", "sub": "acme", "scope": "read:contacts",
            "iat": iat, "exp": exp, "jti": "j-1"
        })
    }

    const NOW: i64 = 1_800_000_000;

    fn verdict(claims: &serde_json::Value) -> Result<CrossAppClaims, String> {
        TokenKeys::new(b"secret")
            .verify_at(
                &signed(claims, Algorithm::HS256, b"secret"),
                ServiceName::CrmApi,
                NOW,
            )
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_lifetime_over_the_ceiling_is_refused() {
        let century = 100 * 365 * 24 * 3600;
        let e = verdict(&claims(NOW, NOW + century)).unwrap_err();
        assert!(e.contains("over the 60s ceiling"), "{e}");
        let e = verdict(&claims(NOW, NOW + MAX_LIFETIME_SECS + LEEWAY_SECS + 1)).unwrap_err();
        assert!(e.contains("lifetime 66s"), "{e}");
        verdict(&claims(NOW, NOW + MAX_LIFETIME_SECS + LEEWAY_SECS)).unwrap();
    }

    #[test]
    fn an_issue_time_ahead_beyond_the_leeway_is_refused() {
        let ahead = NOW + LEEWAY_SECS + 1;
        let e = verdict(&claims(ahead, ahead + 60)).unwrap_err();
        assert!(e.contains("issued 6s in the future"), "{e}");
        let within = NOW + LEEWAY_SECS;
        verdict(&claims(within, within + 60)).unwrap();
    }

    #[test]
    fn expiry_allows_the_leeway_and_no_more() {
        verdict(&claims(NOW - 65, NOW - LEEWAY_SECS)).unwrap();
        let e = verdict(&claims(NOW - 66, NOW - LEEWAY_SECS - 1)).unwrap_err();
        assert!(e.contains("expired 6s ago"), "{e}");
    }

    #[test]
    fn an_issuer_must_be_a_service_identity() {
        for issuer in ["crm-web", "flow-web", "secure-platform", "garbage"] {
            let mut c = claims(NOW, NOW + 60);
            c["iss"] = issuer.into();
            let e = verdict(&c).unwrap_err();
            assert!(e.contains("is not a service identity"), "{issuer}: {e}");
        }
        let mut c = claims(NOW, NOW + 60);
        c["iss"] = "worker".into();
        verdict(&c).unwrap();
    }

    #[test]
    fn every_required_claim_is_required() {
        for claim in ["iss", "aud", "sub", "iat", "exp", "jti"] {
            let mut c = claims(NOW, NOW + 60);
            c.as_object_mut().unwrap().remove(claim);
            assert!(verdict(&c).is_err(), "a token without `{claim}` verified");
        }
        let mut c = claims(NOW, NOW + 60);
        c["jti"] = "".into();
        assert!(verdict(&c).unwrap_err().contains("empty `jti`"));
    }

    #[test]
    fn only_hs256_is_accepted() {
        let keys = TokenKeys::new(b"secret");
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = signed(&claims(NOW, NOW + 60), alg, b"secret");
            assert!(
                keys.verify_at(&token, ServiceName::CrmApi, NOW).is_err(),
                "{alg:?}"
            );
        }
        let b64 =
            |v: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v);
        let body = b64(claims(NOW, NOW + 60).to_string().as_bytes());
        let none = format!("{}.{body}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(keys.verify_at(&none, ServiceName::CrmApi, NOW).is_err());
    }
}
