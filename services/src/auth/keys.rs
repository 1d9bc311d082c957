//! Tenant API keys: `tk_<key id>_<secret>`.
//!
//! The key id is stored in clear and finds the row; the secret is stored as
//! its SHA-256 and compared in constant time. Secrets are 32 random
//! alphanumerics (190 bits), so a fast hash is enough: there is nothing to
//! brute-force that a slow hash would protect.

use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A parsed API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key_id: String,
    secret: String,
}

// Never print the secret, not even in debug output.
impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey(tk_{}_…)", self.key_id)
    }
}

/// Why a string is not an API key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("an API key starts with `tk_`")]
    Prefix,
    #[error(
        "the key id (between `tk_` and the next `_`) must be 4 to 40 lower-case letters or digits"
    )]
    KeyId,
    #[error("the secret (after the key id) must be at least 24 letters or digits")]
    Secret,
}

impl ApiKey {
    /// Generates a fresh key.
    pub fn generate() -> Self {
        let mut rng = rand::thread_rng();
        Self {
            key_id: Alphanumeric
                .sample_string(&mut rng, 12)
                .to_ascii_lowercase(),
            secret: Alphanumeric.sample_string(&mut rng, 32),
        }
    }

    pub fn parse(key: &str) -> Result<Self, KeyFormatError> {
        let rest = key.strip_prefix("tk_").ok_or(KeyFormatError::Prefix)?;
        let (key_id, secret) = rest.split_once('_').ok_or(KeyFormatError::KeyId)?;
        let id_ok = (4..=40).contains(&key_id.len())
            && key_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !id_ok {
            return Err(KeyFormatError::KeyId);
        }
        if secret.len() < 24 || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyFormatError::Secret);
        }
        Ok(Self {
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The full key as the client sends it.
    pub fn expose(&self) -> String {
        format!("tk_{}_{}", self.key_id, self.secret)
    }

    /// What the database stores.
    pub fn secret_sha256(&self) -> Vec<u8> {
        Sha256::digest(self.secret.as_bytes()).to_vec()
    }

    /// Compares this key's secret with a stored hash in constant time.
    pub fn matches(&self, stored_sha256: &[u8]) -> bool {
        let ours = Sha256::digest(self.secret.as_bytes());
        bool::from(ours.as_slice().ct_eq(stored_sha256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_and_match_only_their_hash() {
        let key = ApiKey::generate();
        let parsed = ApiKey::parse(&key.expose()).unwrap();
        assert_eq!(parsed, key);
        assert!(parsed.matches(&key.secret_sha256()));
        let other = ApiKey::generate();
        assert!(!parsed.matches(&other.secret_sha256()));
        assert!(!parsed.matches(&[]));
        assert!(!format!("{key:?}").contains(&key.secret));
    }

    #[test]
    fn malformed_keys_say_what_is_wrong() {
        assert_eq!(ApiKey::parse("abc"), Err(KeyFormatError::Prefix));
        assert_eq!(
            ApiKey::parse("tk_AB_cdefghijklmnopqrstuvwxyz12"),
            Err(KeyFormatError::KeyId)
        );
        assert_eq!(ApiKey::parse("tk_acme_short"), Err(KeyFormatError::Secret));
        assert_eq!(
            ApiKey::parse("tk_acme_has-dash-aaaaaaaaaaaaaaaaaaaaaa"),
            Err(KeyFormatError::Secret)
        );
    }
}
