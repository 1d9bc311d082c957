//! Reading the platform's stores for the invariants: Postgres (as superuser,
//! past row-level security), the lead-processing dead-letter stream in
//! Redis, `/admin/queues` and every service's `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::AsyncCommands;
use uuid::Uuid;

use super::{AcceptedLead, Finding, JobsAccepted, LeadTraces, Verdict};
use crate::env::{error_chain, Ecosystem, Kind};
use crate::platform::Platform;

/// The queue whose jobs carry leads.
const LEAD_QUEUE: &str = "lead-processing";
/// The service that answers `/admin/queues`.
const QUEUE_SERVICE: &str = "flow-api";

/// Jobs settled (completed or dead-lettered) per queue at one moment, and
/// of those the dead-lettered ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueTotals {
    pub settled: BTreeMap<String, u64>,
    pub dead_letters: BTreeMap<String, u64>,
}

impl QueueTotals {
    /// Jobs of `queue` completed or dead-lettered (0 when unknown).
    pub fn settled(&self, queue: &str) -> u64 {
        self.settled.get(queue).copied().unwrap_or(0)
    }

    /// Jobs of `queue` dead-lettered (0 when unknown).
    pub fn dead_letters(&self, queue: &str) -> u64 {
        self.dead_letters.get(queue).copied().unwrap_or(0)
    }
}

/// Checks the invariants against one ecosystem.
#[derive(Debug, Clone)]
pub struct Checker {
    platform: Platform,
    pg: sqlx::PgPool,
    /// A client, not a connection: each check connects anew, so a Redis
    /// the suite restarted is read again rather than through a dead pipe.
    redis: redis::Client,
    /// Services whose `/metrics` show breakers.
    services: Vec<String>,
    /// The leads' traces, when the ecosystem's spans reach the harness.
    traces: Option<LeadTraces>,
}

impl Checker {
    /// A checker on a running ecosystem (which must expose Postgres and
    /// Redis: the process and docker runtimes do).
    pub async fn new(eco: &Ecosystem, platform: Platform) -> Result<Checker, String> {
        let pg = eco
            .postgres_pool()
            .await
            .map_err(|e| format!("the checker needs Postgres: {}", error_chain(&e)))?;
        let redis_url = eco
            .components()
            .find(|c| c.kind() == Kind::Redis)
            .and_then(|c| c.url())
            .ok_or("the checker needs Redis, and the ecosystem has none")?;
        let redis = redis::Client::open(redis_url)
            .map_err(|e| format!("the checker needs Redis: {}", error_chain(&e)))?;
        Ok(Checker {
            platform,
            pg,
            redis,
            services: metric_services(eco),
            traces: LeadTraces::of(eco),
        })
    }

    /// The traces to send leads with, so that the checks hold each lead to
    /// its trace too; `None` when the ecosystem's spans do not reach the
    /// harness.
    pub fn traces(&self) -> Option<&LeadTraces> {
        self.traces.as_ref()
    }

    /// The superuser connection the checks read Postgres through.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pg
    }

    /// One look at the stores: every finding about `leads` and the
    /// platform's queues and breakers right now.
    pub async fn check(&self, leads: &[AcceptedLead]) -> Verdict {
        self.check_with(leads, None).await
    }

    /// [`Checker::check`], also holding the queues to `jobs` (from the
    /// same read of `/admin/queues`).
    pub(super) async fn check_with(
        &self,
        leads: &[AcceptedLead],
        jobs: Option<JobsAccepted<'_>>,
    ) -> Verdict {
        let mut verdict = Verdict {
            leads: leads.len(),
            ..Verdict::default()
        };
        let dead = match self.dead_lettered().await {
            Ok(dead) => dead,
            Err(error) => {
                verdict.findings.push(Finding::Unreadable {
                    what: "the dead-letter stream".into(),
                    error,
                });
                BTreeSet::new()
            }
        };
        if let Err(error) = self.check_leads(leads, &dead, &mut verdict).await {
            verdict.findings.push(Finding::Unreadable {
                what: "Postgres".into(),
                error,
            });
        }
        if let Some(traces) = &self.traces {
            let tally = traces.check(leads, &dead, &mut verdict);
            verdict.traces = tally;
        }
        self.check_queues(jobs, &mut verdict).await;
        self.check_breakers(&mut verdict).await;
        verdict.findings.sort();
        verdict
    }

    async fn check_leads(
        &self,
        leads: &[AcceptedLead],
        dead: &BTreeSet<Uuid>,
        verdict: &mut Verdict,
    ) -> Result<(), String> {
        let ids: Vec<Uuid> = leads.iter().map(|l| l.id).collect();
        let tenants: Vec<String> = leads
            .iter()
            .map(|l| l.tenant.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let sql = |e: sqlx::Error| error_chain(&e);
        // One row per accepted lead that exists: its contact, its
        // activities and its associations.
        let rows: Vec<(Uuid, String, Option<Uuid>, i64, i64, i64)> = sqlx::query_as(
            "SELECT l.id, l.tenant_id, l.contact_id,
                    (SELECT count(*) FROM flow.activities a
                      WHERE a.tenant_id = l.tenant_id AND a.entity_id = l.id
                        AND a.type = 'LEAD_CREATED'),
                    (SELECT count(*) FROM crm.contact_leads c
                      WHERE c.tenant_id = l.tenant_id AND c.lead_id = l.id),
                    (SELECT count(*) FROM crm.contact_leads c
                      WHERE c.tenant_id = l.tenant_id AND c.lead_id = l.id
                        AND c.contact_id = l.contact_id)
               FROM flow.leads l WHERE l.id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pg)
        .await
        .map_err(sql)?;
        let found: BTreeMap<Uuid, _> = rows.into_iter().map(|r| (r.0, r)).collect();
        for lead in leads {
            let Some((id, tenant, contact, activities, links, named)) = found.get(&lead.id) else {
                verdict.findings.push(Finding::LeadLost {
                    tenant: lead.tenant.clone(),
                    lead: lead.id.to_string(),
                });
                continue;
            };
            let (lead_id, tenant) = (id.to_string(), tenant.clone());
            if contact.is_none() {
                if dead.contains(id) {
                    verdict.dead_lettered += 1;
                } else {
                    verdict.findings.push(Finding::Unprocessed {
                        tenant,
                        lead: lead_id,
                    });
                }
                continue;
            }
            verdict.processed += 1;
            verdict.processed_ids.insert(*id);
            if *activities != 1 {
                verdict.findings.push(Finding::Activities {
                    tenant: tenant.clone(),
                    lead: lead_id.clone(),
                    n: *activities,
                });
            }
            if *links != 1 || *named != 1 {
                verdict.findings.push(Finding::Associations {
                    tenant,
                    lead: lead_id,
                    n: *links,
                    detail: if *named == 1 {
                        String::new()
                    } else {
                        " (none with the contact the lead names)".into()
                    },
                });
            }
        }
        let duplicates: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT tenant_id, lower(email), count(*) FROM crm.contacts
              WHERE tenant_id = ANY($1) GROUP BY tenant_id, lower(email) HAVING count(*) > 1",
        )
        .bind(&tenants)
        .fetch_all(&self.pg)
        .await
        .map_err(sql)?;
        for (tenant, email, n) in duplicates {
            verdict
                .findings
                .push(Finding::ContactDuplicated { tenant, email, n });
        }
        Ok(())
    }

    /// The lead ids of the lead-processing dead-letter stream.
    async fn dead_lettered(&self) -> Result<BTreeSet<Uuid>, String> {
        let mut redis = self
            .redis
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| error_chain(&e))?;
        let reply: redis::streams::StreamRangeReply = redis
            .xrange_all(crate::contract::active().queue_stream(LEAD_QUEUE, true))
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|entry| entry.get::<String>("job"))
            .filter_map(|job| serde_json::from_str::<serde_json::Value>(&job).ok())
            .filter_map(|job| job["payload"]["leadId"].as_str()?.parse().ok())
            .collect())
    }

    /// `/admin/queues`: one object per queue.
    async fn queues(&self) -> Result<Vec<serde_json::Value>, Finding> {
        let unreadable = |error: String| Finding::Unreadable {
            what: format!("{QUEUE_SERVICE} /admin/queues"),
            error,
        };
        match self
            .platform
            .admin_get(QUEUE_SERVICE, "/admin/queues")
            .await
        {
            Ok(answer) if answer.ok() => Ok(answer.body["queues"]
                .as_array()
                .cloned()
                .unwrap_or_default()),
            Ok(answer) => Err(unreadable(format!(
                "answered {}: {}",
                answer.status, answer.body
            ))),
            Err(e) => Err(unreadable(error_chain(&e))),
        }
    }

    /// Queues that still hold work and, with `jobs`, queues that settled
    /// fewer jobs since `jobs.before` than were accepted onto them (lost, or
    /// still running), and queues that dead-lettered jobs since then during
    /// an outage shorter than their retry span.
    async fn check_queues(&self, jobs: Option<JobsAccepted<'_>>, verdict: &mut Verdict) {
        let queues = match self.queues().await {
            Ok(queues) => queues,
            Err(finding) => return verdict.findings.push(finding),
        };
        for queue in &queues {
            let n = |key: &str| queue[key].as_u64().unwrap_or(0);
            let (size, in_flight, retrying) = (n("size"), n("inFlight"), n("retrying"));
            if size + in_flight + retrying > 0 {
                verdict.findings.push(Finding::QueueBusy {
                    queue: queue["name"].as_str().unwrap_or("?").to_owned(),
                    size,
                    in_flight,
                    retrying,
                });
            }
        }
        let Some(jobs) = jobs else { return };
        let now = totals(&queues);
        if let Some(outage) = jobs.outage {
            verdict
                .findings
                .extend(dead_letters_in(jobs.before, &now, outage));
        }
        for (queue, &accepted) in jobs.accepted {
            let settled = now
                .settled(queue)
                .saturating_sub(jobs.before.settled(queue));
            if settled < accepted {
                verdict.findings.push(Finding::JobsUnsettled {
                    queue: queue.clone(),
                    accepted,
                    settled,
                });
            }
        }
    }

    /// Jobs settled so far (completed plus dead-lettered), per queue.
    pub async fn queue_totals(&self) -> Result<QueueTotals, Finding> {
        Ok(totals(&self.queues().await?))
    }

    pub(super) async fn check_breakers(&self, verdict: &mut Verdict) {
        for service in &self.services {
            match self.platform.get_public(service, "/metrics").await {
                Ok(answer) if answer.ok() => {
                    let text = answer.body.as_str().unwrap_or_default();
                    for (target, state) in breaker_states(text) {
                        if state != 0 {
                            verdict.findings.push(Finding::BreakerOpen {
                                service: service.clone(),
                                target,
                                state: if state == 1 { "open" } else { "half-open" }.into(),
                            });
                        }
                    }
                }
                Ok(answer) => verdict.findings.push(Finding::Unreadable {
                    what: format!("{service} /metrics"),
                    error: format!("answered {}", answer.status),
                }),
                Err(e) => verdict.findings.push(Finding::Unreadable {
                    what: format!("{service} /metrics"),
                    error: error_chain(&e),
                }),
            }
        }
    }
}

/// Completed plus dead-lettered jobs, and dead-lettered ones, per queue of
/// an `/admin/queues` answer.
fn totals(queues: &[serde_json::Value]) -> QueueTotals {
    let mut totals = QueueTotals::default();
    for q in queues {
        let n = |key: &str| q[key].as_u64().unwrap_or(0);
        let name = q["name"].as_str().unwrap_or("?").to_owned();
        totals
            .settled
            .insert(name.clone(), n("processed") + n("deadLetters"));
        totals.dead_letters.insert(name, n("deadLetters"));
    }
    totals
}

/// The queues that dead-lettered jobs between `before` and `now` although
/// the fault lasted only `outage`, shorter than the retry span the contract
/// gives them: the platform promises to ride such an outage out. Queues
/// whose contract states no span are not judged.
fn dead_letters_in(before: &QueueTotals, now: &QueueTotals, outage: Duration) -> Vec<Finding> {
    let contract = crate::contract::active();
    now.dead_letters
        .keys()
        .filter_map(|queue| {
            let span = contract.queue(queue)?.retry_span?;
            let count = now
                .dead_letters(queue)
                .saturating_sub(before.dead_letters(queue));
            (count > 0 && outage < span).then(|| Finding::DeadLettered {
                queue: queue.clone(),
                count,
                outage,
                span,
            })
        })
        .collect()
}

/// The services of `eco` whose `/metrics` show breakers: every service
/// component with a URL but the mocks (those with an admin API).
pub(super) fn metric_services(eco: &Ecosystem) -> Vec<String> {
    eco.components()
        .filter(|c| c.kind() == Kind::Service && c.admin_url().is_none() && c.url().is_some())
        .map(|c| c.name().to_owned())
        .collect()
}

/// `circuit_breaker_state{target="x"} N` lines of a Prometheus text page.
pub(super) fn breaker_states(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("circuit_breaker_state{")?;
            let (labels, value) = rest.split_once('}')?;
            let target = labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix("target="))?
                .trim_matches('"');
            let value: f64 = value.trim().parse().ok()?;
            Some((target.to_owned(), value as i64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin_queues(lead_dead: u64, email_dead: u64) -> QueueTotals {
        totals(&[
            serde_json::json!({ "name": "lead-processing", "processed": 40, "deadLetters": lead_dead }),
            serde_json::json!({ "name": "email-sync", "processed": 7, "deadLetters": email_dead }),
        ])
    }

    #[test]
    fn totals_count_settled_and_dead_lettered_jobs_apart() {
        let t = admin_queues(2, 0);
        assert_eq!(t.settled("lead-processing"), 42);
        assert_eq!(t.dead_letters("lead-processing"), 2);
        assert_eq!(t.dead_letters("nope"), 0);
    }

    #[test]
    fn dead_letters_during_an_outage_shorter_than_the_span_are_found() {
        let (before, now) = (admin_queues(1, 3), admin_queues(3, 3));
        // Only those added since `before`, and only where some were.
        let found = dead_letters_in(&before, &now, Duration::from_secs(10));
        assert_eq!(
            found,
            [Finding::DeadLettered {
                queue: "lead-processing".into(),
                count: 2,
                outage: Duration::from_secs(10),
                span: Duration::from_secs(30),
            }]
        );
        assert!(!found[0].is_pending());
        assert_eq!(
            found[0].to_string(),
            "2 lead-processing job(s) dead-lettered during a 10.0 s outage; the contract's retry span is 30 s"
        );
        // An outage as long as the span may dead-letter.
        assert!(dead_letters_in(&before, &now, Duration::from_secs(30)).is_empty());
        assert!(dead_letters_in(&now, &now, Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn breaker_states_are_read_from_metrics() {
        let text = "# HELP circuit_breaker_state State\n\
                    circuit_breaker_state{target=\"crm-api\"} 0\n\
                    circuit_breaker_state{target=\"gemini\"} 1\n\
                    circuit_breaker_state_other 5\n";
        assert_eq!(
            breaker_states(text),
            vec![("crm-api".into(), 0), ("gemini".into(), 1)]
        );
    }
}
