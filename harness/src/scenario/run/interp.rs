//! `${...}` expansion at run time: the names the checker accepted
//! (`scenario::vars`) get their values here.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::platform::token::Claims;
use crate::scenario::computed::{self, Computed};
use crate::scenario::model::Secret;
use crate::scenario::token::{self, TokenSpec};
use crate::scenario::vars::{map_strings, pieces, Piece};

/// The ecosystem file's var holding the secret cross-app tokens are signed with.
const TOKEN_SECRET: &str = "token-secret";

/// A fresh tenant the run created for a scenario tenant name.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) key: String,
}

/// Everything a reference can name during one scenario run.
#[derive(Debug, Default)]
pub(crate) struct Values {
    /// `vars:` entries and values saved by steps.
    pub(crate) saved: BTreeMap<String, Value>,
    pub(crate) tenants: BTreeMap<String, Tenant>,
    /// Component name → base URL as the harness reaches it.
    pub(crate) components: BTreeMap<String, String>,
    /// Component name → base URL as the other components reach it.
    pub(crate) peers: BTreeMap<String, String>,
    /// The ecosystem file's `[vars]` (`${vars.admin-token}`).
    pub(crate) ecosystem: BTreeMap<String, String>,
    /// The scenario's `secrets:`.
    pub(crate) declared: Vec<Secret>,
}

impl Values {
    /// The value of one reference.
    fn lookup(&self, name: &str) -> Result<Value, String> {
        if let Some(v) = self.saved.get(name) {
            return Ok(v.clone());
        }
        if let Some(t) = self.tenants.get(name) {
            return Ok(Value::String(t.id.clone()));
        }
        match name {
            "uuid" => return Ok(Value::String(uuid::Uuid::new_v4().to_string())),
            "email" => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                return Ok(Value::String(format!("user-{}@tekup.test", &id[..12])));
            }
            "now" => {
                return Ok(Value::String(
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ))
            }
            _ => {}
        }
        match computed::parse(name) {
            Some(Err(e)) => return Err(format!("`${{{name}}}`: {e}")),
            Some(Ok(Computed::Now { offset_secs, unix })) => {
                return Ok(computed::time(chrono::Utc::now(), offset_secs, unix))
            }
            Some(Ok(Computed::Base64 { url_safe, of })) => {
                let text = self.text(of)?;
                return Ok(Value::String(computed::encode(text.as_bytes(), url_safe)));
            }
            None => {}
        }
        if let Some(spec) = token::parse(name) {
            return self
                .mint(&spec.map_err(|e| format!("`${{{name}}}`: {e}"))?)
                .map(Value::String)
                .map_err(|e| format!("`${{{name}}}`: {e}"));
        }
        if let Some(var) = name.strip_prefix("vars.") {
            return self
                .ecosystem
                .get(var)
                .cloned()
                .map(Value::String)
                .ok_or_else(|| {
                    format!(
                        "`${{{name}}}`: the ecosystem file has no `{var}` in [vars] (it has {})",
                        self.ecosystem
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
        }
        if let Some(var) = name.strip_prefix("env.") {
            return std::env::var(var)
                .map(Value::String)
                .map_err(|_| format!("`${{{name}}}`: the environment variable {var} is not set"));
        }
        let Some((owner, field)) = name.split_once('.') else {
            return Err(format!("`${{{name}}}` has no value in this run"));
        };
        if let Some(t) = self.tenants.get(owner) {
            return match field {
                "id" => Ok(Value::String(t.id.clone())),
                "key" => Ok(Value::String(t.key.clone())),
                _ => Err(format!("`${{{name}}}`: a tenant has `.id` and `.key`")),
            };
        }
        let Some(url) = self.components.get(owner) else {
            let known: Vec<&str> = self.components.keys().map(String::as_str).collect();
            return Err(format!(
                "`${{{name}}}`: no component `{owner}` in the ecosystem (it has {})",
                known.join(", ")
            ));
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}`: {e}"))?;
        match field {
            "url" => Ok(Value::String(url.trim_end_matches('/').to_owned())),
            "peer-url" => Ok(Value::String(
                self.peers
                    .get(owner)
                    .unwrap_or(url)
                    .trim_end_matches('/')
                    .to_owned(),
            )),
            "host" => Ok(Value::String(
                parsed.host_str().unwrap_or_default().to_owned(),
            )),
            "port" => Ok(parsed
                .port_or_known_default()
                .map_or(Value::Null, Value::from)),
            _ => Err(format!(
                "`${{{name}}}`: a component has `.url`, `.peer-url`, `.host` and `.port`"
            )),
        }
    }

    /// A cross-app token of `spec`, signed now with the ecosystem's
    /// `token-secret` (or, `forged`, a secret of its own).
    fn mint(&self, spec: &TokenSpec) -> Result<String, String> {
        let forged;
        let secret = if spec.forged {
            forged = format!("forged-{}", uuid::Uuid::new_v4().simple());
            &forged
        } else {
            self.ecosystem.get(TOKEN_SECRET).ok_or_else(|| {
                format!("the ecosystem file has no `{TOKEN_SECRET}` in [vars] to sign it with")
            })?
        };
        let sub = self
            .tenants
            .get(&spec.sub)
            .map_or(spec.sub.as_str(), |t| t.id.as_str());
        let lifetime = spec
            .lifetime
            .unwrap_or(crate::contract::active().tokens.max_lifetime);
        let lifetime = i64::try_from(lifetime.as_secs()).map_err(|_| "lifetime too long")?;
        let now = chrono::Utc::now().timestamp();
        Ok(
            Claims::new(&spec.iss, &spec.aud, sub, &spec.scope, now, lifetime)
                .sign(secret.as_bytes()),
        )
    }

    /// Expands every reference in a text; non-string values are written as JSON.
    pub(crate) fn text(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        for piece in pieces(text).map_err(|e| format!("{e} in `{text}`"))? {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Ref(name) => match self.lookup(name)? {
                    Value::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }

    /// Expands references in every string of a JSON value. A string that is
    /// exactly one reference takes the referenced value with its type, so
    /// `amount: "${amount}"` stays a number.
    pub(crate) fn json(&self, value: &Value) -> Result<Value, String> {
        map_strings(value, &|s| match whole_reference(s) {
            Some(name) => self.lookup(name),
            None => Ok(Value::String(self.text(s)?)),
        })
    }

    /// Every secret the run knows, to redact from output: tenant keys, the
    /// ecosystem file's vars that look like secrets, and the scenario's
    /// `secrets:` (a named one once it has a value; a value expanded now).
    /// Each as written; the forms it may take on the way out (base64,
    /// URL encoding) are added by `output::Redactor`.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let secret_vars = self.ecosystem.iter().filter(|(k, v)| {
            ["token", "secret", "password", "key"]
                .iter()
                .any(|w| k.contains(w))
                && v.len() >= 8
        });
        let declared = self.declared.iter().filter_map(|s| match s {
            Secret::Name(name) => self.saved.get(name).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            Secret::Value(text) => self.text(text).ok(),
        });
        self.tenants
            .values()
            .map(|t| t.key.clone())
            .chain(secret_vars.map(|(_, v)| v.clone()))
            .chain(declared)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

fn whole_reference(s: &str) -> Option<&str> {
    match pieces(s).ok()?.as_slice() {
        [Piece::Text(""), Piece::Ref(name), Piece::Text("")] => Some(name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values() -> Values {
        let mut v = Values::default();
        v.saved.insert("lead".into(), json!("L-1"));
        v.saved.insert("amount".into(), json!(4200));
        v.tenants.insert(
            "acme".into(),
            Tenant {
                id: "acme-x1".into(),
                key: "tk_a_secret".into(),
            },
        );
        v.components
            .insert("crm-api".into(), "http://127.0.0.1:4100".into());
        v.ecosystem
            .insert("admin-token".into(), "adm-secret-1".into());
        v
    }

    #[test]
    fn ecosystem_vars_are_values_and_secrets() {
        let v = values();
        assert_eq!(
            v.text("Bearer ${vars.admin-token}").unwrap(),
            "Bearer adm-secret-1"
        );
        let e = v.text("${vars.nope}").unwrap_err();
        assert!(
            e.contains("no `nope` in [vars]") && e.contains("admin-token"),
            "{e}"
        );
        assert!(v.secrets().contains(&"adm-secret-1".to_owned()));
    }

    #[test]
    fn expands_saved_values_tenants_components_and_literals() {
        let v = values();
        assert_eq!(
            v.text("/leads/${lead}?t=${acme}&k=${acme.key}").unwrap(),
            "/leads/L-1?t=acme-x1&k=tk_a_secret"
        );
        assert_eq!(
            v.text("${crm-api.url}/webhooks").unwrap(),
            "http://127.0.0.1:4100/webhooks"
        );
        assert_eq!(v.text("${crm-api.port}").unwrap(), "4100");
        assert_eq!(v.text("cost $${amount}").unwrap(), "cost ${amount}");
        assert_eq!(v.text("n=${amount}").unwrap(), "n=4200");
    }

    #[test]
    fn a_whole_reference_keeps_its_type() {
        let v = values();
        let got = v
            .json(&json!({ "amount": "${amount}", "label": "x${amount}", "l": ["${lead}"] }))
            .unwrap();
        assert_eq!(
            got,
            json!({ "amount": 4200, "label": "x4200", "l": ["L-1"] })
        );
    }

    #[test]
    fn generated_values_differ_per_use() {
        let v = values();
        assert_ne!(v.text("${uuid}").unwrap(), v.text("${uuid}").unwrap());
        assert!(v.text("${email}").unwrap().ends_with("@tekup.test"));
    }

    #[test]
    fn unknown_names_say_what_is_missing() {
        let v = values();
        let e = v.text("${globex.key}").unwrap_err();
        assert!(
            e.contains("no component `globex`") && e.contains("crm-api"),
            "{e}"
        );
        let e = v.text("${env.TEKUP_SURELY_NOT_SET_42}").unwrap_err();
        assert!(e.contains("TEKUP_SURELY_NOT_SET_42 is not set"), "{e}");
    }

    #[test]
    fn computed_values_are_made_at_each_use() {
        let v = values();
        let before = chrono::Utc::now();
        let soon = v.text("${now+5m}").unwrap();
        let soon = chrono::DateTime::parse_from_rfc3339(&soon)
            .unwrap()
            .to_utc();
        let after = chrono::Utc::now();
        // Shown to the millisecond.
        let before = before - chrono::TimeDelta::milliseconds(1);
        assert!(soon >= before + chrono::TimeDelta::minutes(5), "{soon}");
        assert!(soon <= after + chrono::TimeDelta::minutes(5), "{soon}");
        let past = v.json(&json!("${now-1h:unix}")).unwrap();
        let past = past
            .as_i64()
            .expect("a whole `:unix` reference is a number");
        assert!((before.timestamp() - 3600 - past).abs() <= 1, "{past}");
        assert_eq!(
            v.text("${base64:ada:lovelace}").unwrap(),
            "YWRhOmxvdmVsYWNl"
        );
        assert_eq!(
            v.text("Basic ${base64:${lead}:${acme.key}}").unwrap(),
            "Basic TC0xOnRrX2Ffc2VjcmV0",
            "of `L-1:tk_a_secret`"
        );
        assert_eq!(v.text("${base64url:\u{fb}\u{ff}}").unwrap(), "w7vDvw");
        assert!(v.text("${base64:${nope}}").unwrap_err().contains("nope"));
    }

    #[test]
    fn declared_secrets_are_secrets_once_known() {
        let mut v = values();
        v.declared = vec![
            Secret::Name("password".into()),
            Secret::Value("lit-${lead}".into()),
        ];
        assert!(v.secrets().contains(&"lit-L-1".to_owned()));
        assert!(!v.secrets().iter().any(|s| s.is_empty()));
        v.saved.insert("password".into(), json!("hunter2-pw"));
        assert!(v.secrets().contains(&"hunter2-pw".to_owned()));
    }

    #[test]
    fn cross_app_tokens_are_minted_at_each_use() {
        let mut v = values();
        v.ecosystem
            .insert("token-secret".into(), "tok-secret".into());
        let reference = "${cross-app-token:iss=flow-api,aud=crm-api,sub=acme,scope=read:contacts}";
        let token = v.text(reference).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&["crm-api"]);
        let claims = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"tok-secret"),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], "acme-x1", "a tenant's name is its id");
        assert_eq!(claims["iss"], "flow-api");
        assert_eq!(claims["scope"], "read:contacts");
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lifetime, 60, "the contract's max-lifetime");
        assert_ne!(v.text(reference).unwrap(), token, "a fresh jti per use");
        let forged = v
            .text("${cross-app-token:iss=flow-api,aud=crm-api,sub=someone,forged}")
            .unwrap();
        assert!(jsonwebtoken::decode::<Value>(
            &forged,
            &jsonwebtoken::DecodingKey::from_secret(b"tok-secret"),
            &validation
        )
        .is_err());
        v.ecosystem.remove("token-secret");
        let e = v.text(reference).unwrap_err();
        assert!(e.contains("no `token-secret` in [vars]"), "{e}");
    }
}
