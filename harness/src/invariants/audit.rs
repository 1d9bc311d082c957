//! Records the contract promises: the gateway's audit, and every accepted
//! write in the store the contract names for it.
//!
//! **The audit** (`audit:` of the contract): one row per event and room
//! `(tenant, app)` it was delivered to, and no row without a delivery.
//! The oracle is what a suite's own WebSocket subscribers received, as
//! [`Delivery`]s `(room tenant, room app, event id)`, for fresh tenants
//! only the suite connects as, so every row of those tenants must be
//! explained by a delivery the suite saw:
//!
//! - every delivery has exactly one row keyed `(tenant, event, app)` (none:
//!   [`Finding::Unaudited`] with 0 rows, which is *pending*: the gateway
//!   writes its audit in batches after delivering; more than one: broken);
//! - every row of those tenants has a delivery to a subscriber of its room
//!   ([`Finding::AuditWithoutDelivery`], pending too: the row can be
//!   written while the frame is still on its way to the subscriber, which
//!   on a busy machine reads it later; a row whose frame never comes is
//!   reported when the wait gives up); a caller may hold only
//!   the rooms it had subscribers in to this ([`Rooms::Subscribed`]), when
//!   a row elsewhere would depend on connections outside what it checks.
//!
//! The room is the subscriber's, not the event's: an event of tenant A
//! that reaches a subscriber of tenant B (a leak) was delivered to room
//! `(B, app)` and must be audited there; an audit that names only A's room
//! hides the leak, and is reported for it.
//!
//! [`Audit::settle`] re-reads the deliveries on every poll (a frame may
//! still be on its way when the row is already written) and waits, with a
//! deadline, like [`super::Checker::settle`].
//!
//! **Accepted writes** ([`check_stored`]): an id the platform answered 2xx
//! for is a row of its table, read as superuser (past row-level
//! security). The table of a kind of object is the contract's tenant
//! table named after it (`leads` → `flow.leads`, see [`store_for`]), so a
//! team's contract moves it.

use std::collections::{BTreeMap, BTreeSet};

use super::{poll_until, Finding, Patience, Verdict};
use crate::contract::Contract;
use crate::env::error_chain;

/// One event received by one subscriber of a room.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delivery {
    /// The room's tenant: the tenant the subscriber connected as.
    pub tenant: String,
    /// The room's app: the app the subscriber connected as.
    pub app: String,
    /// The event's id.
    pub event: String,
    /// The event's type, for messages.
    pub event_type: String,
}

/// Which rooms' audit rows must each have a delivery.
#[derive(Debug, Clone, Copy)]
pub enum Rooms<'a> {
    /// Every room of the tenants.
    All,
    /// Only these `(tenant, app)` rooms: rows of others are not judged.
    Subscribed(&'a BTreeSet<(String, String)>),
}

/// The contract's audit table, read as superuser.
#[derive(Debug, Clone)]
pub struct Audit {
    pg: sqlx::PgPool,
    table: String,
    /// `SELECT tenant, event, app, count(*) … WHERE tenant = ANY($1)`.
    sql: String,
}

impl Audit {
    /// The audit of `contract` (`audit.table` and `audit.key`: the tenant,
    /// event and app columns, in that order) on the database `pg`.
    pub fn new(pg: sqlx::PgPool, contract: &Contract) -> Result<Audit, String> {
        let table =
            qualified(&contract.audit.table).map_err(|e| format!("contract `audit.table`: {e}"))?;
        let [tenant, event, app] = contract.audit.key.as_slice() else {
            return Err(format!(
                "contract `audit.key`: expected three columns (tenant, event, app), got {:?}",
                contract.audit.key
            ));
        };
        for column in [tenant, event, app] {
            identifier(column).map_err(|e| format!("contract `audit.key`: {e}"))?;
        }
        let sql = format!(
            "SELECT {tenant}::text, {event}::text, {app}::text, count(*) FROM {table}
              WHERE {tenant}::text = ANY($1) GROUP BY 1, 2, 3"
        );
        Ok(Audit { pg, table, sql })
    }

    /// One look: the findings about `tenants`' audit rows (of `rooms`)
    /// and `deliveries`.
    pub async fn check(
        &self,
        tenants: &[String],
        rooms: Rooms<'_>,
        deliveries: &[Delivery],
    ) -> Verdict {
        let mut verdict = Verdict::default();
        let rows: Vec<(String, String, String, i64)> = match sqlx::query_as(&self.sql)
            .bind(tenants)
            .fetch_all(&self.pg)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                verdict.findings.push(Finding::Unreadable {
                    what: self.table.clone(),
                    error: error_chain(&e),
                });
                return verdict;
            }
        };
        verdict.findings = compare(&rows, rooms, deliveries);
        verdict
    }

    /// Checks again and again until nothing pending is left or `patience`
    /// gives up (a row that turns up is progress); `deliveries` is asked
    /// anew each time.
    pub async fn settle(
        &self,
        tenants: &[String],
        rooms: Rooms<'_>,
        deliveries: impl Fn() -> Vec<Delivery>,
        patience: &mut Patience,
    ) -> Verdict {
        poll_until(patience, || {
            let now = deliveries();
            async move { self.check(tenants, rooms, &now).await }
        })
        .await
    }
}

/// The findings of audit `rows` (tenant, event, app, count) against
/// `deliveries`.
fn compare(
    rows: &[(String, String, String, i64)],
    rooms: Rooms<'_>,
    deliveries: &[Delivery],
) -> Vec<Finding> {
    let audited: BTreeMap<(&str, &str, &str), i64> = rows
        .iter()
        .map(|(t, e, a, n)| ((t.as_str(), e.as_str(), a.as_str()), *n))
        .collect();
    let delivered: BTreeMap<(&str, &str, &str), &str> = deliveries
        .iter()
        .map(|d| {
            (
                (d.tenant.as_str(), d.event.as_str(), d.app.as_str()),
                d.event_type.as_str(),
            )
        })
        .collect();
    let mut findings = Vec::new();
    for (&(tenant, event, app), &event_type) in &delivered {
        let rows = audited.get(&(tenant, event, app)).copied().unwrap_or(0);
        if rows != 1 {
            findings.push(Finding::Unaudited {
                tenant: tenant.to_owned(),
                app: app.to_owned(),
                event: event.to_owned(),
                event_type: event_type.to_owned(),
                rows,
            });
        }
    }
    let judged = |tenant: &str, app: &str| match rooms {
        Rooms::All => true,
        Rooms::Subscribed(rooms) => rooms.contains(&(tenant.to_owned(), app.to_owned())),
    };
    for &(tenant, event, app) in audited.keys() {
        if judged(tenant, app) && !delivered.contains_key(&(tenant, event, app)) {
            findings.push(Finding::AuditWithoutDelivery {
                tenant: tenant.to_owned(),
                app: app.to_owned(),
                event: event.to_owned(),
            });
        }
    }
    findings.sort();
    findings
}

/// A write the platform accepted: what it is, its tenant and id, and the
/// table it must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedWrite {
    /// For messages: `contact-2`.
    pub what: String,
    pub tenant: String,
    pub id: String,
    /// A tenant table of the contract (see [`store_for`]).
    pub table: String,
}

/// The contract's tenant table for objects called `noun` (`leads`): the
/// one of `stores.tenant-tables` named `<schema>.<noun>`.
pub fn store_for(contract: &Contract, noun: &str) -> Result<String, String> {
    let found: Vec<&String> = contract
        .stores
        .tenant_tables
        .iter()
        .filter(|t| t.rsplit_once('.').is_some_and(|(_, name)| name == noun))
        .collect();
    match found.as_slice() {
        [one] => qualified(one).map_err(|e| format!("contract `stores.tenant-tables`: {e}")),
        [] => Err(format!(
            "contract `stores.tenant-tables` names no table `<schema>.{noun}` (it has {})",
            contract.stores.tenant_tables.join(", ")
        )),
        many => Err(format!(
            "contract `stores.tenant-tables` names {} tables `<schema>.{noun}`: {}",
            many.len(),
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Every write of `writes` that is not a row (`id`, `tenant_id`) of its
/// table, read as superuser on `pg`.
pub async fn check_stored(pg: &sqlx::PgPool, writes: &[AcceptedWrite]) -> Vec<Finding> {
    let mut by_table: BTreeMap<&str, Vec<&AcceptedWrite>> = BTreeMap::new();
    for w in writes {
        by_table.entry(w.table.as_str()).or_default().push(w);
    }
    let mut findings = Vec::new();
    for (table, writes) in by_table {
        let table = match qualified(table) {
            Ok(t) => t,
            Err(error) => {
                findings.push(Finding::Unreadable {
                    what: table.to_owned(),
                    error,
                });
                continue;
            }
        };
        let ids: Vec<String> = writes.iter().map(|w| w.id.clone()).collect();
        let found: Result<Vec<(String, String)>, _> = sqlx::query_as(&format!(
            "SELECT id::text, tenant_id::text FROM {table} WHERE id::text = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(pg)
        .await;
        let found: BTreeSet<(String, String)> = match found {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => {
                findings.push(Finding::Unreadable {
                    what: table,
                    error: error_chain(&e),
                });
                continue;
            }
        };
        for w in writes {
            if !found.contains(&(w.id.clone(), w.tenant.clone())) {
                findings.push(Finding::WriteLost {
                    what: w.what.clone(),
                    tenant: w.tenant.clone(),
                    id: w.id.clone(),
                    table: table.clone(),
                });
            }
        }
    }
    findings
}

/// `schema.table` (or `table`) of plain lowercase identifiers, as given:
/// what may be put into SQL text.
pub(crate) fn qualified(name: &str) -> Result<String, String> {
    for part in name.split('.') {
        identifier(part).map_err(|_| {
            format!("`{name}` is not a table name (schema.table, each of lowercase letters, digits and _)")
        })?;
    }
    if name.split('.').count() > 2 {
        return Err(format!("`{name}` is not a table name (schema.table)"));
    }
    Ok(name.to_owned())
}

fn identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a column name (lowercase letters, digits and _)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(tenant: &str, app: &str, event: &str) -> Delivery {
        Delivery {
            tenant: tenant.into(),
            app: app.into(),
            event: event.into(),
            event_type: "LEAD_CREATED".into(),
        }
    }

    fn row(tenant: &str, event: &str, app: &str, n: i64) -> (String, String, String, i64) {
        (tenant.into(), event.into(), app.into(), n)
    }

    #[test]
    fn each_delivery_has_one_row_and_each_row_a_delivery() {
        let deliveries = [
            delivery("a", "crm-web", "e1"),
            delivery("a", "crm-web", "e1"),
            delivery("a", "flow-web", "e1"),
            delivery("b", "crm-web", "e2"),
            delivery("b", "crm-web", "e3"),
        ];
        let rows = [
            row("a", "e1", "crm-web", 1),
            row("a", "e1", "flow-web", 1),
            row("b", "e2", "crm-web", 2),
            row("b", "e9", "inbox-ai", 1),
        ];
        let findings = compare(&rows, Rooms::All, &deliveries);
        let text: Vec<String> = findings.iter().map(ToString::to_string).collect();
        assert_eq!(findings.len(), 3, "{text:#?}");
        assert!(text.iter().any(|t| t
            == "event e2 (LEAD_CREATED) delivered to room (b, crm-web) has 2 audit rows, not 1"));
        assert!(text.iter().any(|t| t
            == "event e3 (LEAD_CREATED) delivered to room (b, crm-web) has 0 audit rows, not 1"));
        assert!(text.iter().any(|t| t
            == "the audit has a row for event e9 in room (b, inbox-ai), which no subscriber of that room received"));
        // A missing row may still come, and so may the frame of a row
        // without a delivery; two rows will not go.
        let pending: Vec<bool> = findings.iter().map(Finding::is_pending).collect();
        assert_eq!(pending.iter().filter(|p| **p).count(), 2);
        // Rows of rooms nobody subscribed to are not judged when asked so.
        let rooms = [("b".to_owned(), "crm-web".to_owned())]
            .into_iter()
            .collect();
        let findings = compare(&rows, Rooms::Subscribed(&rooms), &deliveries);
        assert_eq!(findings.len(), 2, "{findings:#?}");
    }

    #[tokio::test]
    async fn the_tables_come_from_the_contract_and_are_checked_as_names() {
        let contract = crate::contract::Contract::reference();
        assert_eq!(store_for(contract, "leads").unwrap(), "flow.leads");
        assert_eq!(
            store_for(contract, "incidents").unwrap(),
            "secure.incidents"
        );
        let none = store_for(contract, "invoices").unwrap_err();
        assert!(
            none.contains("names no table `<schema>.invoices`"),
            "{none}"
        );
        assert!(qualified("flow.leads; drop table x").is_err());
        assert!(qualified("a.b.c").is_err());
        let mut bad = contract.clone();
        bad.audit.key = vec!["tenant_id".into(), "event_id".into()];
        let pg = sqlx::PgPool::connect_lazy("postgres://x@localhost/x").unwrap();
        let err = Audit::new(pg, &bad).unwrap_err();
        assert!(
            err.contains("contract `audit.key`: expected three columns"),
            "{err}"
        );
    }
}
