//! Cross-app tokens as a service of the platform signs them (`tokens:` of
//! the contract): HS256 over the shared secret, with `iss`, `aud`, `sub`,
//! `scope`, `iat`, `exp` and `jti`.
//!
//! The harness mints its own, with `jsonwebtoken`, never with the
//! services' code: scenarios (`${cross-app-token:...}`) and the sweep's
//! `tokens` class call the platform as a service would, and the sweep
//! also signs what no service should (other algorithms, other secrets,
//! claims missing or out of bounds) from the same claims.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The claims of one cross-app token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The calling service.
    pub iss: String,
    /// The called service.
    pub aud: String,
    /// The tenant (its id).
    pub sub: String,
    /// Space-separated permissions.
    pub scope: String,
    /// Unix seconds.
    pub iat: i64,
    /// Unix seconds.
    pub exp: i64,
    pub jti: String,
}

impl Claims {
    /// A token from `iss` to `aud` for tenant `sub`, issued `now` and valid
    /// `lifetime_secs`, with a fresh `jti`.
    pub fn new(iss: &str, aud: &str, sub: &str, scope: &str, now: i64, lifetime_secs: i64) -> Self {
        Self {
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            sub: sub.to_owned(),
            scope: scope.to_owned(),
            iat: now,
            exp: now + lifetime_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// As the JSON payload of a token.
    pub fn to_json(&self) -> Value {
        json!({
            "iss": self.iss, "aud": self.aud, "sub": self.sub, "scope": self.scope,
            "iat": self.iat, "exp": self.exp, "jti": self.jti,
        })
    }

    /// Signed with HS256 and `secret`, as the platform's services sign.
    pub fn sign(&self, secret: &[u8]) -> String {
        sign(&self.to_json(), Algorithm::HS256, secret)
    }
}

/// Any JSON payload signed with an HMAC algorithm (`HS256`, `HS384`,
/// `HS512`) and `secret`.
///
/// # Panics
/// On an algorithm that is not HMAC: callers pass constants.
pub fn sign(payload: &Value, alg: Algorithm, secret: &[u8]) -> String {
    assert!(
        matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512),
        "sign() takes an HMAC algorithm, not {alg:?}"
    );
    jsonwebtoken::encode(
        &Header::new(alg),
        payload,
        &EncodingKey::from_secret(secret),
    )
    .expect("an HMAC key signs any JSON payload")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn a_minted_token_verifies_with_the_secret_and_carries_the_claims() {
        let claims = Claims::new("flow-api", "crm-api", "acme-1", "read:contacts", 1_000, 60);
        let token = claims.sign(b"s3cret");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["crm-api"]);
        validation.validate_exp = false;
        let got = jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(got, claims.to_json());
        assert_eq!(got["exp"], 1_060);
        assert!(jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_secret(b"other"),
            &validation
        )
        .is_err());
    }
}
