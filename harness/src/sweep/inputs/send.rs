//! Sending a case and judging the answer.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::cases::{Base, Case, Expect, Mutation};
use super::fields::FieldPath;
use super::fixtures::{shorten, tag_emails};
use crate::contract::Contract;
use crate::env::error_chain;
use crate::platform::TenantKey;
use crate::sweep::{Operation, Repro, Target};

/// How long one request may take before it counts as a hang.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Stands for a raw JSON value while the body is serialised.
const RAW_SLOT: &str = "\u{E000}tekup-raw\u{E000}";

/// A request as it goes out.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Request {
    pub(super) method: String,
    /// Path and query.
    pub(super) path: String,
    pub(super) body: Option<String>,
    pub(super) content_type: Option<String>,
}

/// `op`'s request from `base` with `case` applied (none: the valid one),
/// the fields of `dropped` left out and the emails tagged with `tag`.
pub(super) fn render(
    op: &Operation,
    base: &Base,
    case: Option<&Case>,
    dropped: &[FieldPath],
    tag: &str,
) -> Request {
    let mutation = case.map(|c| &c.mutation);
    let mut path = op.path.clone();
    for (name, value) in &base.path_params {
        let value = match mutation {
            Some(Mutation::Path(n, v)) if n == name => v,
            _ => value,
        };
        path = path.replace(&format!("{{{name}}}"), value);
    }
    let mut query: Vec<(String, String)> = base.query.clone();
    if let Some(Mutation::Query(name, value)) = mutation {
        query.retain(|(n, _)| n != name);
        query.push((name.clone(), value.clone()));
    }
    if !query.is_empty() {
        let pairs: Vec<String> = query.iter().map(|(n, v)| format!("{n}={v}")).collect();
        path = format!("{path}?{}", pairs.join("&"));
    }
    let mut body = base.body.clone();
    if let Some(b) = &mut body {
        for field in dropped {
            field.set(b, None);
        }
        tag_emails(op.body_schema.as_ref(), b, tag);
    }
    let json = "application/json".to_owned();
    let (body, content_type) = match (mutation, body) {
        (Some(Mutation::Body { raw }), _) => (Some(raw.clone()), Some(json)),
        (Some(Mutation::ContentType(ct)), Some(b)) => (Some(b.to_string()), Some(ct.clone())),
        (Some(Mutation::Field(field, value)), Some(mut b)) => {
            field.set(&mut b, value.clone());
            (Some(b.to_string()), Some(json))
        }
        (Some(Mutation::RawField(field, raw)), Some(mut b)) => {
            field.set(&mut b, Some(Value::String(RAW_SLOT.into())));
            let text = b
                .to_string()
                .replace(&Value::String(RAW_SLOT.into()).to_string(), raw);
            (Some(text), Some(json))
        }
        (_, Some(b)) => (Some(b.to_string()), Some(json)),
        (_, None) => (None, None),
    };
    Request {
        method: op.method.clone(),
        path,
        body,
        content_type,
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub(super) enum Got {
    Answer {
        status: u16,
        text: String,
        json: Option<Value>,
    },
    Timeout,
    NoAnswer(String),
}

/// Who sends: a tenant's own app, or the admin (with or without a token).
#[derive(Debug, Clone)]
pub(super) enum Caller {
    Tenant { tenant: TenantKey, app: String },
    Admin { token: Option<String> },
}

/// Sends `request` to `service` as `caller`, within [`REQUEST_TIMEOUT`].
pub(super) async fn send(
    target: &Target,
    service: &str,
    caller: &Caller,
    request: &Request,
) -> Got {
    let base_url = match target.platform.url(service) {
        Ok(url) => url,
        Err(e) => return Got::NoAnswer(e.to_string()),
    };
    let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
        return Got::NoAnswer(format!("`{}` is not an HTTP method", request.method));
    };
    let mut builder = target
        .platform
        .http()
        .request(method, format!("{base_url}{}", request.path))
        .timeout(REQUEST_TIMEOUT);
    for (name, value) in credentials(target, caller) {
        builder = builder.header(name, value);
    }
    if let Some(ct) = &request.content_type {
        builder = builder.header("content-type", ct);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let response = match builder.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Got::Timeout,
        Err(e) => return Got::NoAnswer(error_chain(&e)),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(bytes) => Got::Answer {
            status,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            json: serde_json::from_slice(&bytes).ok(),
        },
        Err(e) if e.is_timeout() => Got::Timeout,
        Err(e) => Got::NoAnswer(error_chain(&e)),
    }
}

fn credentials(target: &Target, caller: &Caller) -> Vec<(String, String)> {
    let h = &target.contract.headers;
    match caller {
        Caller::Tenant { tenant, app } => vec![
            (h.tenant_key.clone(), tenant.key.clone()),
            (h.tenant_id.clone(), tenant.id.clone()),
            (h.source_app.clone(), app.clone()),
        ],
        Caller::Admin { token: Some(t) } => vec![("authorization".into(), format!("Bearer {t}"))],
        Caller::Admin { token: None } => Vec::new(),
    }
}

/// The request as a repro (credentials redacted by [`Repro`]).
pub(super) fn repro(target: &Target, service: &str, caller: &Caller, request: &Request) -> Repro {
    let base_url = target.platform.url(service).unwrap_or("http://?");
    let mut repro = Repro::new(service, base_url, &request.method, &request.path);
    for (name, value) in credentials(target, caller) {
        repro = repro.header(&name, &value);
    }
    if let Some(ct) = &request.content_type {
        repro = repro.header("content-type", ct);
    }
    if let Some(body) = &request.body {
        repro = repro.raw(body.clone());
    }
    if let Caller::Tenant { app, .. } = caller {
        repro.tenant = Some(("a".into(), app.clone()));
    }
    repro
}

/// What is wrong with an answer; equal kinds are "the same failure" to the shrinker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fault {
    /// No answer within [`REQUEST_TIMEOUT`].
    Hang,
    NoAnswer,
    ServerError,
    /// A 2xx for what must be refused.
    Accepted,
    /// A 2xx for another tenant's id.
    ForeignAccepted,
    /// Another status than the contract's for another tenant's id.
    WrongStatus,
    /// A refusal not in the platform's error shape.
    BadShape,
    /// Neither 2xx nor 4xx.
    Unexpected,
    /// A refused write that stored rows.
    Stored,
    /// An answer showing another tenant's id or email.
    Echo,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Hang => "no answer within 10 s",
            Fault::NoAnswer => "no answer",
            Fault::ServerError => "a server error",
            Fault::Accepted => "accepted",
            Fault::ForeignAccepted => "another tenant's id accepted",
            Fault::WrongStatus => "the wrong status",
            Fault::BadShape => "an error not in the platform's shape",
            Fault::Unexpected => "an unexpected status",
            Fault::Stored => "a refused write stored rows",
            Fault::Echo => "another tenant's data in the answer",
        })
    }
}

/// A fault with its title and detail.
#[derive(Debug, Clone)]
pub(super) struct Verdict {
    pub(super) fault: Fault,
    pub(super) title: String,
    pub(super) detail: String,
}

/// Judges `got` for a case labelled `label` expecting `expect`; `markers`
/// are the other tenant's strings the request itself did not carry.
pub(super) fn judge(
    contract: &Contract,
    error_schema: &jsonschema::Validator,
    label: &str,
    expect: &Expect,
    got: &Got,
    markers: &BTreeSet<&str>,
) -> Option<Verdict> {
    let verdict = |fault: Fault, title: String, detail: String| {
        Some(Verdict {
            fault,
            title,
            detail,
        })
    };
    let (status, text, json) = match got {
        Got::Timeout => {
            return verdict(
                Fault::Hang,
                format!(
                    "`{label}` got no answer within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ),
                "a request, good or bad, is answered promptly".into(),
            )
        }
        Got::NoAnswer(why) => {
            return verdict(
                Fault::NoAnswer,
                format!("`{label}` got no answer"),
                why.clone(),
            )
        }
        Got::Answer { status, text, json } => (*status, text, json),
    };
    let expected = match expect {
        Expect::Refused(why) => format!("expected a 4xx: {why}"),
        Expect::Either => "expected a 2xx or a 4xx".into(),
        Expect::NotFound => format!(
            "expected {:?} (object-of-another-tenant)",
            contract.statuses("object-of-another-tenant")
        ),
    };
    let got_text = format!("got {status}: {}", shorten(text));
    if let Some(marker) = markers.iter().find(|m| text.contains(**m)) {
        return verdict(
            Fault::Echo,
            format!("`{label}` answered {status} showing another tenant's `{marker}`"),
            format!("nothing of another tenant is echoed; {got_text}"),
        );
    }
    match status {
        500..=599 => verdict(
            Fault::ServerError,
            format!("`{label}` answered {status}"),
            format!("{expected}; {got_text}"),
        ),
        200..=299 => match expect {
            Expect::Either => None,
            Expect::Refused(_) => verdict(
                Fault::Accepted,
                format!("`{label}` accepted ({status})"),
                format!("{expected}; {got_text}"),
            ),
            Expect::NotFound => verdict(
                Fault::ForeignAccepted,
                format!("`{label}` accepted ({status}): another tenant's id accepted"),
                format!("{expected}; {got_text}"),
            ),
        },
        400..=499 => {
            let shaped = json.as_ref().is_some_and(|j| error_schema.is_valid(j));
            if !shaped {
                return verdict(
                    Fault::BadShape,
                    format!("`{label}` answered {status} not in the platform's error shape"),
                    format!("{expected} with a body of `error.schema`; {got_text}"),
                );
            }
            let allowed = contract.statuses("object-of-another-tenant");
            if *expect == Expect::NotFound && !allowed.contains(&status) {
                return verdict(
                    Fault::WrongStatus,
                    format!("`{label}` answered {status}, the contract says {allowed:?}"),
                    format!("{expected}; {got_text}"),
                );
            }
            None
        }
        _ => verdict(
            Fault::Unexpected,
            format!("`{label}` answered {status}"),
            format!("{expected}; {got_text}"),
        ),
    }
}

/// The rows of `table` (`schema.table`) that belong to `tenant`, counted
/// as superuser; `None` when the name is not a plain qualified name.
pub(super) async fn count_rows(
    pool: &sqlx::PgPool,
    table: &str,
    tenant: &str,
) -> Result<i64, String> {
    let plain = |part: &str| {
        !part.is_empty()
            && part.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() != 2 || !parts.iter().all(|p| plain(p)) {
        return Err(format!(
            "x-tekup-store `{table}` is not a `schema.table` name of lower-case letters, digits and `_`"
        ));
    }
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".\"{}\" WHERE tenant_id = $1",
        parts[0], parts[1]
    ))
    .bind(tenant)
    .fetch_one(pool)
    .await
    .map_err(|e| format!("counting {table}: {}", error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, body: Value) -> Got {
        Got::Answer {
            status,
            text: body.to_string(),
            json: Some(body),
        }
    }

    fn fault(expect: &Expect, got: &Got, markers: &[&str]) -> Option<Fault> {
        let contract = crate::contract::Contract::reference();
        let shape = jsonschema::validator_for(&contract.error.schema).unwrap();
        let markers: BTreeSet<&str> = markers.iter().copied().collect();
        judge(contract, &shape, "x: y", expect, got, &markers).map(|v| v.fault)
    }

    #[test]
    fn answers_are_judged_against_what_the_case_expects() {
        let error = json!({ "error": { "code": "validation_failed", "message": "bad" } });
        let refused = Expect::Refused("why".into());
        assert_eq!(fault(&refused, &answer(422, error.clone()), &[]), None);
        assert_eq!(fault(&Expect::Either, &answer(201, json!({})), &[]), None);
        assert_eq!(
            fault(&refused, &answer(201, json!({})), &[]),
            Some(Fault::Accepted)
        );
        assert_eq!(
            fault(&Expect::Either, &answer(500, error.clone()), &[]),
            Some(Fault::ServerError)
        );
        assert_eq!(
            fault(&Expect::Either, &Got::Timeout, &[]),
            Some(Fault::Hang)
        );
        assert_eq!(
            fault(
                &refused,
                &answer(400, json!({ "message": "no error object" })),
                &[]
            ),
            Some(Fault::BadShape)
        );
        assert_eq!(
            fault(&Expect::NotFound, &answer(201, json!({})), &[]),
            Some(Fault::ForeignAccepted)
        );
        assert_eq!(
            fault(&Expect::NotFound, &answer(422, error.clone()), &[]),
            Some(Fault::WrongStatus)
        );
        let not_found = json!({ "error": { "code": "not_found", "message": "no such lead" } });
        assert_eq!(fault(&Expect::NotFound, &answer(404, not_found), &[]), None);
        assert_eq!(
            fault(
                &Expect::Either,
                &answer(200, json!({ "tenantId": "other-1234abcd" })),
                &["other-1234abcd"]
            ),
            Some(Fault::Echo)
        );
    }
}
