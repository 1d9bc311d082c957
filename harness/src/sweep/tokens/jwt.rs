//! Cross-app tokens against the contract's `tokens:` rules.
//!
//! The probe is an operation of the OpenAPI documents a service identity
//! may call with a token: a `GET` without parameters needing a permission
//! the matrix gives that issuer on that service (flow-api → crm-api `GET
//! /contacts` with `read:contacts` on the reference platform). Tokens are
//! minted from the valid claims with one thing changed each.

use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{send, ClassReport, Repro, Target};
use crate::platform::token::{self, Claims};
use crate::platform::TenantKey;
use crate::sweep::Security;

/// The status of a refused token (the contract's `tokens:`: "anything else
/// is refused (401)").
const REFUSED: u16 = 401;
const YEAR: i64 = 365 * 24 * 3600;

/// An operation a token is sent to.
#[derive(Debug, Clone)]
struct Probe {
    service: String,
    path: String,
    issuer: String,
    permission: String,
}

/// One token and the answer the contract implies.
struct Case {
    rule: String,
    title: String,
    token: String,
    claims: Value,
    /// The tenant id sent in the tenant header.
    tenant: String,
    probe: Probe,
    expected: Vec<u16>,
}

pub(super) async fn sweep(target: &Target, report: &mut ClassReport) -> Result<(), String> {
    let secret = target.secret("token-secret")?.as_bytes().to_vec();
    let (probe, denied) = probes(target)?;
    let tenant = create(target, "sweep-tokens-a").await?;
    let other = create(target, "sweep-tokens-b").await?;
    let rules = &target.contract.tokens;
    let max = secs(rules.max_lifetime);
    let leeway = secs(rules.leeway);
    let now = chrono::Utc::now().timestamp();
    let valid = Claims::new(
        &probe.issuer,
        &probe.service,
        &tenant.id,
        &probe.permission,
        now,
        max,
    );

    let control = Case {
        rule: "a valid token".into(),
        title: format!("a valid token from {} was refused", probe.issuer),
        token: valid.sign(&secret),
        claims: valid.to_json(),
        tenant: tenant.id.clone(),
        probe: probe.clone(),
        expected: vec![200],
    };
    if !check(target, report, &control).await? {
        // Refusals of a platform that refuses everything prove nothing.
        return Ok(());
    }

    let mut cases = Vec::new();
    let refused = |rule: &str, title: String, claims: Value, token: String| Case {
        rule: rule.to_owned(),
        title,
        token,
        claims,
        tenant: tenant.id.clone(),
        probe: probe.clone(),
        expected: vec![REFUSED],
    };
    let case = |rule: &str, title: String, claims: &Claims, token: String| {
        refused(rule, title, claims.to_json(), token)
    };
    let lifetime = format!("tokens.max-lifetime ({max}s, leeway {leeway}s)");
    let century = Claims {
        exp: valid.iat + 100 * YEAR,
        ..valid.clone()
    };
    cases.push(case(
        &lifetime,
        "a token valid for 100 years".into(),
        &century,
        century.sign(&secret),
    ));
    let over = Claims {
        exp: valid.iat + max + leeway + 1,
        ..valid.clone()
    };
    cases.push(case(
        &lifetime,
        format!(
            "a token with exp - iat = {}s (max + leeway + 1 s)",
            max + leeway + 1
        ),
        &over,
        over.sign(&secret),
    ));
    let ahead = Claims {
        iat: now + leeway + 30,
        exp: now + leeway + 30 + max,
        ..valid.clone()
    };
    cases.push(case(
        &format!("tokens.leeway ({leeway}s) on an iat ahead"),
        format!("a token issued {}s in the future", leeway + 30),
        &ahead,
        ahead.sign(&secret),
    ));
    let expired = Claims {
        iat: now - max - leeway - 60,
        exp: now - leeway - 60,
        ..valid.clone()
    };
    cases.push(case(
        &format!("exp (leeway {leeway}s)"),
        format!("a token expired {}s ago", leeway + 60),
        &expired,
        expired.sign(&secret),
    ));
    for claim in &rules.required_claims {
        let mut payload = valid.to_json();
        payload.as_object_mut().map(|o| o.remove(claim));
        cases.push(Case {
            rule: format!(
                "tokens.required-claims ({})",
                rules.required_claims.join(", ")
            ),
            title: format!("a token without `{claim}`"),
            token: token::sign(&payload, Algorithm::HS256, &secret),
            claims: payload,
            tenant: tenant.id.clone(),
            probe: probe.clone(),
            expected: vec![REFUSED],
        });
    }
    let algorithm = format!("tokens.algorithm ({})", rules.algorithm);
    for (alg, name) in [(Algorithm::HS384, "HS384"), (Algorithm::HS512, "HS512")] {
        cases.push(Case {
            rule: algorithm.clone(),
            title: format!("a token signed {name} with the shared secret"),
            token: token::sign(&valid.to_json(), alg, &secret),
            claims: valid.to_json(),
            tenant: tenant.id.clone(),
            probe: probe.clone(),
            expected: vec![REFUSED],
        });
    }
    for (title, token) in [
        (
            "an unsigned token (alg none)",
            crafted("none", &valid.to_json(), None),
        ),
        (
            "an RS256 header over an HMAC of the shared secret",
            crafted("RS256", &valid.to_json(), Some(&secret)),
        ),
    ] {
        cases.push(Case {
            rule: algorithm.clone(),
            title: title.to_owned(),
            token,
            claims: valid.to_json(),
            tenant: tenant.id.clone(),
            probe: probe.clone(),
            expected: vec![REFUSED],
        });
    }
    let contract = target.contract;
    if let Some(other_service) = contract.services.iter().find(|s| **s != probe.service) {
        let aud = Claims {
            aud: other_service.clone(),
            ..valid.clone()
        };
        cases.push(case(
            "tokens.audience (the called service)",
            format!("a token for {other_service} sent to {}", probe.service),
            &aud,
            aud.sign(&secret),
        ));
    }
    // An app that holds the permission itself would borrow its grants.
    let app = contract
        .apps
        .iter()
        .filter(|a| !contract.service_identities.contains(a))
        .find(|a| {
            contract
                .permissions_of(a, &probe.service)
                .contains(probe.permission.as_str())
        })
        .or_else(|| {
            contract
                .apps
                .iter()
                .find(|a| !contract.service_identities.contains(a))
        });
    for issuer in app
        .map(String::as_str)
        .into_iter()
        .chain(["mallory-service"])
    {
        let iss = Claims {
            iss: issuer.to_owned(),
            ..valid.clone()
        };
        cases.push(case(
            "tokens.issuer (a service identity)",
            format!("a token issued by `{issuer}`, not a service identity"),
            &iss,
            iss.sign(&secret),
        ));
    }
    cases.push(case(
        "the shared secret",
        "a token signed with another secret".into(),
        &valid,
        valid.sign(b"not-the-platform-secret"),
    ));
    let foreign = Claims {
        sub: other.id.clone(),
        ..valid.clone()
    };
    cases.push(Case {
        rule: format!("tokens.subject ({})", rules.subject),
        title: "a token for another tenant than the tenant header".into(),
        token: foreign.sign(&secret),
        claims: foreign.to_json(),
        tenant: tenant.id.clone(),
        probe: probe.clone(),
        expected: vec![else_status(&rules.subject).unwrap_or(403)],
    });
    if let Some(denied) = denied {
        let scoped = Claims {
            scope: denied.permission.clone(),
            ..valid.clone()
        };
        cases.push(Case {
            rule: format!(
                "permissions ({} holds no `{}` on {})",
                denied.issuer, denied.permission, denied.service
            ),
            title: format!(
                "a token of {} asking for `{}`",
                denied.issuer, denied.permission
            ),
            token: scoped.sign(&secret),
            claims: scoped.to_json(),
            tenant: tenant.id.clone(),
            probe: denied.clone(),
            expected: contract.statuses("missing-permission").to_vec(),
        });
    }
    for case in &cases {
        check(target, report, case).await?;
    }
    Ok(())
}

/// Sends one case; records a finding unless the status is expected.
/// Returns whether it was.
async fn check(target: &Target, report: &mut ClassReport, case: &Case) -> Result<bool, String> {
    let base_url = target
        .platform
        .url(&case.probe.service)
        .map_err(|e| e.to_string())?;
    let repro = Repro::new(&case.probe.service, base_url, "GET", &case.probe.path)
        .header("authorization", &format!("Bearer {}", case.token))
        .header(&target.contract.headers.tenant_id, &case.tenant);
    let sent = send(target, &repro).await?;
    let operation = format!("{} GET {}", case.probe.service, case.probe.path);
    report.cases += 1;
    report.operations.insert(operation.clone());
    if case.expected.contains(&sent.status) {
        return Ok(true);
    }
    let expected: Vec<String> = case.expected.iter().map(u16::to_string).collect();
    report.found(
        operation,
        format!(
            "{} answered {} (expected {})",
            case.title,
            sent.status,
            expected.join(" or ")
        ),
        format!(
            "rule: {}\nclaims: {}\ngot {}, expected {}\nanswer: {}",
            case.rule,
            case.claims,
            sent.status,
            expected.join(" or "),
            sent.shown()
        ),
        Some(repro),
    );
    Ok(false)
}

/// The valid probe, and one the same issuer lacks the permission for.
fn probes(target: &Target) -> Result<(Probe, Option<Probe>), String> {
    let contract = target.contract;
    let gets = || {
        target
            .operations
            .list
            .iter()
            .filter_map(|op| match &op.security {
                Security::Tenant {
                    permission: Some(p),
                } if op.method == "GET"
                    && !op.path.contains('{')
                    && op.params.iter().all(|p| !p.required) =>
                {
                    Some((op, p))
                }
                _ => None,
            })
    };
    for issuer in &contract.service_identities {
        let Some((op, permission)) = gets().find(|(op, p)| {
            contract
                .permissions_of(issuer, &op.service)
                .contains(p.as_str())
        }) else {
            continue;
        };
        let probe = Probe {
            service: op.service.clone(),
            path: op.path.clone(),
            issuer: issuer.clone(),
            permission: permission.clone(),
        };
        let denied = gets()
            .find(|(o, p)| {
                o.service == op.service
                    && !contract
                        .permissions_of(issuer, &o.service)
                        .contains(p.as_str())
            })
            .map(|(o, p)| Probe {
                service: o.service.clone(),
                path: o.path.clone(),
                issuer: issuer.clone(),
                permission: p.clone(),
            });
        return Ok((probe, denied));
    }
    Err(
        "no GET operation without parameters in the OpenAPI documents needs a permission \
         a service identity holds (the contract's `service-identities` rows of `permissions`)"
            .to_owned(),
    )
}

async fn create(target: &Target, name: &str) -> Result<TenantKey, String> {
    target
        .platform
        .create_tenant(name)
        .await
        .map_err(|e| format!("failed to create a tenant: {e}"))
}

/// A token with the header `{"alg": alg}` over `payload`: unsigned, or
/// with an HMAC-SHA256 of `secret` (an algorithm-confusion attempt).
fn crafted(alg: &str, payload: &Value, secret: Option<&[u8]>) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = json!({ "alg": alg, "typ": "JWT" });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = secret.map_or_else(String::new, |secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(input.as_bytes());
        b64(&mac.finalize().into_bytes())
    });
    format!("{input}.{signature}")
}

/// The status a rule's text names as `(else 403)`.
fn else_status(rule: &str) -> Option<u16> {
    let at = rule.find("else ")? + "else ".len();
    rule[at..].get(..3)?.parse().ok()
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_rule_names_its_status() {
        assert_eq!(
            else_status("the tenant, equal to x-tenant-id (else 403)"),
            Some(403)
        );
        assert_eq!(else_status("the tenant"), None);
    }

    #[test]
    fn crafted_tokens_carry_the_header_asked_for() {
        let token = crafted("none", &json!({ "sub": "a" }), None);
        assert!(token.ends_with('.'), "{token}");
        let header = token.split('.').next().unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&header).unwrap()["alg"],
            "none"
        );
        let rs = crafted("RS256", &json!({ "sub": "a" }), Some(b"k"));
        assert_eq!(rs.split('.').nth(2).unwrap().len(), 43, "an HMAC-SHA256");
    }
}
