//! The tenants and objects the access cases are about.
//!
//! - `a`: the tenant whose apps make the calls that must be admitted;
//! - `b`: another tenant, whose key and objects must not open `c`'s data;
//! - `c`: the caller of every case that must be refused. It is quiet (the
//!   platform has finished its work on `c`'s objects before the refusals
//!   start), so its stores can be counted before and after: a refused
//!   write stores nothing;
//! - a revoked key of `c`, and a suspended tenant, when the sweep has the
//!   database access the contract's `stores.revoke-key` and
//!   `stores.suspend-tenant` need.
//!
//! Objects: one of each kind some reference (`x-tekup-ref`) names, per
//! tenant, made through the operation that creates it, with its example.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::platform::{Queues, TenantKey};
use crate::sweep::{Operation, Security, Target};

use super::request::{build, send};

#[derive(Debug)]
pub(super) struct World {
    pub a: TenantKey,
    pub b: TenantKey,
    pub c: TenantKey,
    pub c_revoked: Option<TenantKey>,
    pub suspended: Option<TenantKey>,
    /// (reference, tenant id) -> object id.
    pub objects: BTreeMap<(String, String), String>,
    /// What could not be set up, said in the report.
    pub notes: Vec<String>,
}

impl World {
    pub(super) async fn make(t: &Target) -> Result<World, String> {
        let p = &t.platform;
        let e = |e: crate::platform::PlatformError| e.to_string();
        let a = p.create_tenant("sweep-access-a").await.map_err(e)?;
        let b = p.create_tenant("sweep-access-b").await.map_err(e)?;
        let mut c_keys = p.create_tenant_keys("sweep-access-c", 2).await.map_err(e)?;
        let c_second = c_keys.pop();
        let c = c_keys.remove(0);
        let mut world = World {
            a,
            b,
            c,
            c_revoked: None,
            suspended: None,
            objects: BTreeMap::new(),
            notes: Vec::new(),
        };
        world.operator_cases(t, c_second).await?;
        let tenants = [world.a.clone(), world.b.clone(), world.c.clone()];
        for tenant in &tenants {
            world.make_objects(t, tenant).await?;
        }
        Ok(world)
    }

    /// The revoked key and the suspended tenant, through the contract's SQL.
    async fn operator_cases(
        &mut self,
        t: &Target,
        second: Option<TenantKey>,
    ) -> Result<(), String> {
        let stores = &t.contract.stores;
        let Some(db) = &t.superuser else {
            self.notes.push(
                "no database access: the revoked-key and suspended-tenant cases were not run"
                    .into(),
            );
            return Ok(());
        };
        if let (Some(sql), Some(key)) = (&stores.revoke_key, second) {
            let key_id = key_id(&key.key).ok_or("the platform's API key has no `tk_<id>_` form")?;
            sqlx::query(sql)
                .bind(key_id)
                .execute(db)
                .await
                .map_err(|e| format!("stores.revoke-key failed: {e}"))?;
            self.c_revoked = Some(key);
        } else {
            self.notes
                .push("the contract has no stores.revoke-key: no revoked-key case".into());
        }
        if let Some(sql) = &stores.suspend_tenant {
            let s = t
                .platform
                .create_tenant("sweep-access-suspended")
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(sql)
                .bind(&s.id)
                .execute(db)
                .await
                .map_err(|e| format!("stores.suspend-tenant failed: {e}"))?;
            self.suspended = Some(s);
        } else {
            self.notes
                .push("the contract has no stores.suspend-tenant: no suspended-tenant case".into());
        }
        Ok(())
    }

    /// Makes one object of every referenced kind for `tenant`, each after
    /// the objects its own request refers to.
    async fn make_objects(&mut self, t: &Target, tenant: &TenantKey) -> Result<(), String> {
        let mut wanted: Vec<&Operation> = referenced(t);
        while !wanted.is_empty() {
            let before = wanted.len();
            let mut left = Vec::new();
            for op in wanted {
                let reference = format!("{}:{}", op.service, op.operation_id);
                let fill = |r: &str| {
                    self.objects
                        .get(&(r.to_owned(), tenant.id.clone()))
                        .cloned()
                };
                let Ok(built) = build(op, &fill) else {
                    left.push(op);
                    continue;
                };
                let app = admitted_app(t, op).ok_or_else(|| {
                    format!(
                        "no app of the contract holds the permission {} needs",
                        op.label()
                    )
                })?;
                let (got, repro) = send(t, &built, &tenant_headers(t, tenant, &app)).await;
                let id = got.body["id"].as_str().map(str::to_owned).ok_or_else(|| {
                    format!(
                        "making a `{reference}` object with the operation's example answered {} {}\n    curl: {}",
                        got.status,
                        got.error.as_deref().unwrap_or(&got.body.to_string()),
                        repro.curl()
                    )
                })?;
                self.objects.insert((reference, tenant.id.clone()), id);
            }
            if left.len() == before {
                let names: Vec<String> = left.iter().map(|o| o.label()).collect();
                return Err(format!(
                    "references that cannot be made (a cycle?): {}",
                    names.join(", ")
                ));
            }
            wanted = left;
        }
        Ok(())
    }

    /// The object `reference` names, of `tenant`.
    pub(super) fn object(&self, reference: &str, tenant: &str) -> Option<String> {
        self.objects
            .get(&(reference.to_owned(), tenant.to_owned()))
            .cloned()
    }
}

/// The operations some reference names, in document order.
fn referenced(t: &Target) -> Vec<&Operation> {
    let mut refs: Vec<String> = Vec::new();
    for op in &t.operations.list {
        refs.extend(op.params.iter().filter_map(|p| p.reference.clone()));
        if let Some(props) = op
            .body_schema
            .as_ref()
            .and_then(|s| s["properties"].as_object())
        {
            refs.extend(
                props
                    .values()
                    .filter_map(|p| p["x-tekup-ref"].as_str().map(str::to_owned)),
            );
        }
    }
    t.operations
        .list
        .iter()
        .filter(|op| refs.contains(&format!("{}:{}", op.service, op.operation_id)))
        .collect()
}

/// The first app of the contract that holds what `op` needs.
pub(super) fn admitted_app(t: &Target, op: &Operation) -> Option<String> {
    admitted_apps(t, op).into_iter().next()
}

/// Every app of the contract that holds what `op` needs (every app, for an
/// operation that needs no permission).
pub(super) fn admitted_apps(t: &Target, op: &Operation) -> Vec<String> {
    let permission = match &op.security {
        Security::Tenant { permission } => permission.as_deref(),
        _ => None,
    };
    t.contract
        .apps
        .iter()
        .filter(|app| {
            permission.is_none_or(|p| t.contract.permissions_of(app, &op.service).contains(p))
        })
        .cloned()
        .collect()
}

/// The three credential headers of `tenant` as `app`.
pub(super) fn tenant_headers(t: &Target, tenant: &TenantKey, app: &str) -> Vec<(String, String)> {
    let h = &t.contract.headers;
    vec![
        (h.tenant_key.clone(), tenant.key.clone()),
        (h.tenant_id.clone(), tenant.id.clone()),
        (h.source_app.clone(), app.to_owned()),
    ]
}

/// The key id of a `tk_<id>_<secret>` key.
fn key_id(key: &str) -> Option<&str> {
    key.strip_prefix("tk_")?.split_once('_').map(|(id, _)| id)
}

/// Waits until the platform has no queued, in-flight or retrying job (the
/// first service of the contract that lists queues says), up to `within`.
pub(super) async fn settle(t: &Target, within: Duration) -> Result<(), String> {
    let services: Vec<&str> = t.contract.services.iter().map(String::as_str).collect();
    match t.platform.wait_queues_idle(&services, None, within).await? {
        Queues::Idle => Ok(()),
        Queues::Unknown => Err("no service answered /admin/queues".into()),
    }
}
