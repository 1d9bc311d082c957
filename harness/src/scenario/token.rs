//! `${cross-app-token:iss=flow-api,aud=crm-api,sub=acme,scope=read:contacts}`:
//! a cross-app token minted when the step runs.
//!
//! A token written into a scenario file is a credential committed to the
//! repository, and one that still works when the file is read must outlive
//! the contract's 60-second ceiling. So scenarios name the claims and the
//! runner signs them with the ecosystem's `token-secret` var at each use:
//! `iat` now, `exp` after `lifetime` (the contract's `max-lifetime` unless
//! given), a fresh `jti`. `sub` naming a scenario tenant is its id; any
//! other text is taken as it is. `forged` signs with a secret of its own,
//! which the platform cannot know.

use std::time::Duration;

use super::read::parse_duration;

/// What a reference starts with.
pub(crate) const PREFIX: &str = "cross-app-token:";

/// The hint of every error about a token reference.
pub(crate) const HINT: &str =
    "write `${cross-app-token:iss=flow-api,aud=crm-api,sub=acme,scope=read:contacts}` \
     (options iss or app, aud or audience, sub or tenant, scope, lifetime, forged)";

/// The claims a reference asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenSpec {
    pub(crate) iss: String,
    pub(crate) aud: String,
    /// A scenario tenant's name, or a literal subject.
    pub(crate) sub: String,
    /// Space-separated permissions (none when not given).
    pub(crate) scope: String,
    /// `None`: the contract's `max-lifetime`.
    pub(crate) lifetime: Option<Duration>,
    pub(crate) forged: bool,
}

/// `None` when `name` is not a token reference, else its claims or what
/// is wrong with it.
pub(crate) fn parse(name: &str) -> Option<Result<TokenSpec, String>> {
    let options = name.strip_prefix(PREFIX)?;
    Some(parse_options(options))
}

fn parse_options(options: &str) -> Result<TokenSpec, String> {
    let mut spec = TokenSpec {
        iss: String::new(),
        aud: String::new(),
        sub: String::new(),
        scope: String::new(),
        lifetime: None,
        forged: false,
    };
    for option in options.split(',').map(str::trim) {
        let (key, value) = match option.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (option, None),
        };
        let slot = match (key, value) {
            ("forged", None) => {
                spec.forged = true;
                continue;
            }
            ("iss" | "app", Some(_)) => &mut spec.iss,
            ("aud" | "audience", Some(_)) => &mut spec.aud,
            ("sub" | "tenant", Some(_)) => &mut spec.sub,
            ("scope", Some(_)) => &mut spec.scope,
            ("lifetime", Some(v)) => {
                spec.lifetime = Some(parse_duration(v).map_err(|e| format!("lifetime: {e}"))?);
                continue;
            }
            ("", _) => return Err("an empty option (two commas?)".to_owned()),
            (_, None) => return Err(format!("option `{key}` needs a value (`{key}=...`)")),
            (_, Some(_)) => return Err(format!("unknown option `{key}`")),
        };
        if !slot.is_empty() {
            return Err(format!(
                "`{key}` is given twice (`app` is `iss`, `audience` is `aud`, `tenant` is `sub`)"
            ));
        }
        *slot = value.unwrap_or_default().to_owned();
    }
    for (name, value) in [("iss", &spec.iss), ("aud", &spec.aud), ("sub", &spec.sub)] {
        if value.is_empty() {
            return Err(format!("`{name}` is missing"));
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read() {
        let spec = parse("cross-app-token:iss=flow-api, aud=crm-api,sub=acme,scope=read:contacts write:contacts,lifetime=30s,forged")
            .unwrap()
            .unwrap();
        assert_eq!(
            spec,
            TokenSpec {
                iss: "flow-api".into(),
                aud: "crm-api".into(),
                sub: "acme".into(),
                scope: "read:contacts write:contacts".into(),
                lifetime: Some(Duration::from_secs(30)),
                forged: true,
            }
        );
        assert_eq!(parse("email"), None);
    }

    #[test]
    fn app_audience_and_tenant_name_the_claims_too() {
        let spec = parse("cross-app-token:app=flow-api,audience=crm-api,tenant=acme,lifetime=30s")
            .unwrap()
            .unwrap();
        assert_eq!(
            (spec.iss.as_str(), spec.aud.as_str(), spec.sub.as_str()),
            ("flow-api", "crm-api", "acme")
        );
        assert_eq!(
            parse("cross-app-token:app=a,iss=b,aud=c,sub=d")
                .unwrap()
                .unwrap_err(),
            "`iss` is given twice (`app` is `iss`, `audience` is `aud`, `tenant` is `sub`)"
        );
    }

    #[test]
    fn bad_options_say_what_is_wrong() {
        let error = |text: &str| parse(text).unwrap().unwrap_err();
        assert_eq!(
            error("cross-app-token:iss=flow-api,aud=crm-api"),
            "`sub` is missing"
        );
        assert_eq!(
            error("cross-app-token:iss=a,aud=b,sub=c,exp=1"),
            "unknown option `exp`"
        );
        assert_eq!(
            error("cross-app-token:iss=a,aud=b,sub=c,scope"),
            "option `scope` needs a value (`scope=...`)"
        );
        assert!(error("cross-app-token:iss=a,aud=b,sub=c,lifetime=10")
            .contains("lifetime: invalid duration"));
        assert_eq!(
            error("cross-app-token:iss=a,,aud=b"),
            "an empty option (two commas?)"
        );
    }
}
