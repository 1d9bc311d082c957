//! The checks of a suite's subscribers: the events they received, and the
//! gateway's audit of those deliveries.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::{EventCheck, SUBSCRIBER_APP};
use crate::invariants::{
    AcceptedLead, Audit, Checker, Delivery, Finding, Patience, Rooms, Verdict,
};
use crate::platform::{Subscriber, TenantKey};

/// The gateway's audit of the subscribers' tenants against what they
/// received (each subscriber is the only connection of its room), settled
/// within `within` (at least a few seconds: the audit is written in
/// batches after the deliveries the event check waited for).
pub(super) async fn check_audit(
    checker: &Checker,
    subscribers: &[(TenantKey, Subscriber)],
    patience: &mut Patience,
) -> Verdict {
    let audit = match Audit::new(checker.pool().clone(), crate::contract::active()) {
        Ok(audit) => audit,
        Err(error) => {
            let mut verdict = Verdict::default();
            verdict.findings.push(Finding::Unreadable {
                what: "the audit".into(),
                error,
            });
            return verdict;
        }
    };
    let tenants: Vec<String> = subscribers.iter().map(|(t, _)| t.id.clone()).collect();
    let deliveries = || {
        subscribers
            .iter()
            .flat_map(|(tenant, sub)| {
                sub.events().into_iter().map(|e| Delivery {
                    tenant: tenant.id.clone(),
                    app: SUBSCRIBER_APP.to_owned(),
                    event: e["id"].as_str().unwrap_or_default().to_owned(),
                    event_type: e["type"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect()
    };
    // The audit's batches are written a moment after the deliveries: give
    // its first rows that long even when the waits before used up the
    // patience.
    let mut floor;
    let patience = if patience.left() >= AUDIT_FLOOR {
        patience
    } else {
        floor = Patience::new(AUDIT_FLOOR);
        &mut floor
    };
    audit
        .settle(&tenants, Rooms::All, deliveries, patience)
        .await
}

/// The least time the audit check gets (see [`check_audit`]).
const AUDIT_FLOOR: Duration = Duration::from_secs(5);

/// Waits for every processed lead's `LEAD_CREATED` at its tenant's
/// subscriber while `patience` lasts (an expected event arriving is
/// progress), then looks for duplicates and foreign events over a short
/// quiet window.
pub(super) async fn check_events(
    subscribers: &[(TenantKey, Subscriber)],
    leads: &[AcceptedLead],
    verdict: &Verdict,
    patience: &mut Patience,
) -> EventCheck {
    /// How long to listen after the expected events for extra ones.
    const QUIET: Duration = Duration::from_millis(500);
    /// How often to look whether events arrived, while waiting for all.
    const STEP: Duration = Duration::from_secs(1);
    let mut check = EventCheck::default();
    for (tenant, sub) in subscribers {
        let expected: BTreeSet<String> = leads
            .iter()
            .filter(|l| l.tenant == tenant.id && verdict.processed_ids.contains(&l.id))
            .map(|l| l.id.to_string())
            .collect();
        let lead_ids = |events: &[Value]| -> BTreeSet<String> {
            events
                .iter()
                .filter(|e| e["type"] == "LEAD_CREATED")
                .filter_map(|e| e["data"]["id"].as_str().map(str::to_owned))
                .collect()
        };
        let arrived = || expected.intersection(&lead_ids(&sub.events())).count();
        let mut seen = arrived();
        while !patience.exhausted()
            && sub.closed().is_none()
            && !sub
                .wait_for(patience.left().min(STEP), |events| {
                    expected.is_subset(&lead_ids(events))
                })
                .await
        {
            let now = arrived();
            if now > seen {
                patience.progressed();
                seen = now;
            }
        }
        sub.wait_for(QUIET, |_| false).await;
        let events = sub.events();
        check.received += events.len();
        let got = lead_ids(&events);
        for missing in expected.difference(&got) {
            check.missing += 1;
            if check.problems.len() < 10 {
                check.problems.push(format!(
                    "{}: no LEAD_CREATED for processed lead {missing}{}",
                    tenant.id,
                    sub.closed()
                        .map(|c| format!(" (the connection ended: {c})"))
                        .unwrap_or_default()
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for event in &events {
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            if !seen.insert(id.clone()) {
                check.duplicated += 1;
                if check.problems.len() < 10 {
                    check
                        .problems
                        .push(format!("{}: event {id} delivered twice", tenant.id));
                }
            }
            if event["tenantId"] != tenant.id.as_str() {
                check.foreign += 1;
                if check.problems.len() < 10 {
                    check.problems.push(format!(
                        "{}: received event {id} of tenant {}",
                        tenant.id, event["tenantId"]
                    ));
                }
            }
        }
    }
    check
}
