//! The objects the cases refer to, made first through the operations that
//! make them (`x-tekup-ref`), from those operations' own examples.
//!
//! Each swept operation has a tenant of its own, so the rows a refused
//! write must not add are counted where nothing else writes; a second
//! tenant (the *other*) owns one object of every kind referred to, whose
//! ids the cases put in every reference field, and whose ids, tenant id
//! and emails no answer may show.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use serde_json::Value;

use super::cases::Base;
use super::fields::{self, Kind};
use super::params::encode;
use crate::contract::Contract;
use crate::platform::{Platform, TenantKey};
use crate::sweep::{Operation, Operations, Security};

/// The deepest chain of references followed (a lead of a contact of a deal ...).
const MAX_DEPTH: usize = 4;

/// The app of the contract's matrix that may call `op` (the first that
/// holds its permission), or `None` when only service identities do.
pub(super) fn app_for<'c>(contract: &'c Contract, op: &Operation) -> Option<&'c str> {
    let Security::Tenant { permission } = &op.security else {
        return None;
    };
    contract
        .apps
        .iter()
        .find(|app| match permission {
            Some(p) => contract
                .permissions_of(app, &op.service)
                .contains(p.as_str()),
            None => true,
        })
        .map(String::as_str)
}

/// Emails in `body` (fields of `format: email`) given a `+tag`, so that
/// each request's email is new and a unique email is never the reason for
/// a refusal.
pub(super) fn tag_emails(schema: Option<&Value>, body: &mut Value, tag: &str) {
    let Some(schema) = schema else { return };
    for field in fields::fields(schema, body) {
        let Kind::Text {
            format: Some(format),
            ..
        } = &field.kind
        else {
            continue;
        };
        if format != "email" {
            continue;
        }
        let Some(Value::String(email)) = field.path.get(body) else {
            continue;
        };
        let Some((local, domain)) = email.rsplit_once('@') else {
            continue;
        };
        let tagged = format!("{local}+{tag}@{domain}");
        field.path.set(body, Some(Value::String(tagged)));
    }
}

/// Objects made so far, per tenant and reference.
#[derive(Debug)]
pub(super) struct Fixtures<'a> {
    pub(super) platform: &'a Platform,
    pub(super) contract: &'a Contract,
    pub(super) operations: &'a Operations,
    made: BTreeMap<(String, String), String>,
    /// Every string of every object made for the other tenant that is an
    /// id or an email, and the tenant's id: what no answer may show.
    pub(super) markers: BTreeSet<String>,
    counter: usize,
}

impl<'a> Fixtures<'a> {
    pub(super) fn new(
        platform: &'a Platform,
        contract: &'a Contract,
        operations: &'a Operations,
    ) -> Self {
        Fixtures {
            platform,
            contract,
            operations,
            made: BTreeMap::new(),
            markers: BTreeSet::new(),
            counter: 0,
        }
    }

    /// The valid request of `op` for `tenant`: its example, every
    /// reference in it and in its path made for `tenant` first.
    pub(super) fn base<'s>(
        &'s mut self,
        op: &'s Operation,
        tenant: &'s TenantKey,
        other: bool,
        depth: usize,
    ) -> BoxFuture<'s, Result<Base, String>> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                return Err(format!(
                    "references nest deeper than {MAX_DEPTH} at {}",
                    op.label()
                ));
            }
            let mut base = Base::default();
            if let (Some(schema), Some(example)) = (&op.body_schema, &op.body_example) {
                let mut body = example.clone();
                for field in fields::fields(schema, example) {
                    let (Some(reference), Some(_)) = (&field.reference, field.path.get(example))
                    else {
                        continue;
                    };
                    let id = self.object(tenant, reference, other, depth + 1).await?;
                    field.path.set(&mut body, Some(Value::String(id)));
                }
                base.body = Some(body);
            }
            for param in &op.params {
                let value = match (&param.reference, &param.example) {
                    (Some(reference), _) if param.location == "path" => {
                        self.object(tenant, reference, other, depth + 1).await?
                    }
                    (_, Some(Value::String(s))) => s.clone(),
                    (_, Some(v)) => v.to_string(),
                    (None, None) if param.location == "path" => {
                        return Err(format!(
                            "{}: path parameter `{}` has no example and no x-tekup-ref",
                            op.label(),
                            param.name
                        ))
                    }
                    _ => continue,
                };
                match param.location.as_str() {
                    "path" => {
                        base.path_params.insert(param.name.clone(), encode(&value));
                    }
                    "query" if param.required => {
                        base.query.push((param.name.clone(), encode(&value)));
                    }
                    _ => {}
                }
            }
            Ok(base)
        })
    }

    /// The id of `tenant`'s object of kind `reference`, made on first use.
    pub(super) fn object<'s>(
        &'s mut self,
        tenant: &'s TenantKey,
        reference: &'s str,
        other: bool,
        depth: usize,
    ) -> BoxFuture<'s, Result<String, String>> {
        Box::pin(async move {
            let key = (tenant.id.clone(), reference.to_owned());
            if let Some(id) = self.made.get(&key) {
                return Ok(id.clone());
            }
            let op = self.operations.referenced(reference).ok_or_else(|| {
                format!("x-tekup-ref `{reference}` names no operation of the documents")
            })?;
            let app = app_for(self.contract, op).ok_or_else(|| {
                format!(
                    "no app of the matrix may call {} (x-tekup-ref `{reference}`)",
                    op.label()
                )
            })?;
            let base = self.base(op, tenant, other, depth).await?;
            self.counter += 1;
            let tag = format!("{}{}", if other { "other" } else { "own" }, self.counter);
            let mut body = base.body.clone();
            if let Some(b) = &mut body {
                tag_emails(op.body_schema.as_ref(), b, &tag);
            }
            let mut path = op.path.clone();
            for (name, value) in &base.path_params {
                path = path.replace(&format!("{{{name}}}"), value);
            }
            let method = reqwest::Method::from_bytes(op.method.as_bytes())
                .map_err(|e| format!("{}: {e}", op.label()))?;
            let answer = self
                .platform
                .client(tenant, app)
                .call(method, &op.service, &path, body.as_ref())
                .await
                .map_err(|e| format!("making a fixture through {}: {e}", op.label()))?;
            let id = match &answer.body["id"] {
                Value::String(s) if answer.ok() => s.clone(),
                Value::Number(n) if answer.ok() => n.to_string(),
                _ => {
                    return Err(format!(
                        "making a fixture through {} (its example, as {app}) answered {}: {}",
                        op.label(),
                        answer.status,
                        shorten(&answer.body.to_string())
                    ))
                }
            };
            if other {
                self.markers.insert(tenant.id.clone());
                collect_markers(&answer.body, &mut self.markers);
            }
            self.made.insert(key, id.clone());
            Ok(id)
        })
    }
}

/// Strings of an answer that identify the other tenant's data: ids (a
/// key ending in `id`) and emails.
fn collect_markers(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s)
                        if s.len() >= 8
                            && (key.to_ascii_lowercase().ends_with("id") || s.contains('@')) =>
                    {
                        out.insert(s.clone());
                    }
                    _ => collect_markers(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_markers(v, out)),
        _ => {}
    }
}

pub(super) fn shorten(text: &str) -> String {
    if text.chars().count() <= 300 {
        return text.to_owned();
    }
    let head: String = text.chars().take(300).collect();
    format!("{head}…")
}
