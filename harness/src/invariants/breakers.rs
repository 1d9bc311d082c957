//! Breakers that read open longer than the platform says they open for.
//!
//! An open circuit breaker refuses calls for the platform's open time, then
//! lets probes through (half-open). Nothing has to happen at that moment,
//! so an implementation that looks at the clock only when a call asks
//! keeps reading open once traffic stops: in `circuit_breaker_state`, the
//! gauge dashboards and the `CircuitBreakerOpen` alert read, for as long as
//! no call comes. [`watch_open_breakers`] holds a platform to the time it
//! states: every breaker that reads open must read half-open or closed
//! once that time has passed, with no traffic at all.
//!
//! The open time is the deployment's stated parameter, `breaker-open-secs`
//! of the ecosystem file's `[vars]` (an external deployment's file can set
//! it too), never something read from the services' code: the check runs
//! against any platform whose file states it. The watch allows
//! [`GRACE_FACTOR`] open times, for the reads' own pace and a busy machine;
//! a breaker that opened before the watch began only makes the reading
//! more lenient, never wrong.
//!
//! Only the caller can stop the traffic: a probe that fails opens a breaker
//! again for a full open time, which looks the same from outside. So the
//! watch is for after a run or a fault has stopped its load (and nothing in
//! the platform calls the broken target by itself).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::stores::{breaker_states, metric_services};
use super::Finding;
use crate::env::model::EcosystemFile;
use crate::env::{error_chain, Ecosystem};
use crate::platform::Platform;

/// The `[vars]` entry of the ecosystem file stating the platform's breaker
/// open time, in whole seconds.
pub const OPEN_TIME_VAR: &str = "breaker-open-secs";

/// How many open times a breaker may go on reading open before it is a
/// finding.
pub const GRACE_FACTOR: u32 = 3;

/// How often an open breaker's service is read again: often enough that
/// the time it read open is known to a quarter of a second, and a handful
/// of `/metrics` reads a second is nothing to a service.
const POLL: Duration = Duration::from_millis(250);

/// The platform's breaker open time, as an ecosystem file states it
/// (`eco.file()` of a running one).
///
/// # Errors
/// When the file has no [`OPEN_TIME_VAR`] or it is not a whole number of
/// seconds (the message names the variable).
pub fn open_time(file: &EcosystemFile) -> Result<Duration, String> {
    let text = file.vars.get(OPEN_TIME_VAR).ok_or_else(|| {
        format!(
            "the ecosystem file states no breaker open time: its [vars] has no `{OPEN_TIME_VAR}`"
        )
    })?;
    let secs: u64 = text.trim().parse().map_err(|_| {
        format!("`{OPEN_TIME_VAR}` of the ecosystem file's [vars] is {text:?}, not a whole number of seconds")
    })?;
    Ok(Duration::from_secs(secs))
}

/// What [`watch_open_breakers`] saw.
#[derive(Debug, Clone, Default)]
pub struct BreakerWatch {
    /// The platform's open time the breakers were held to.
    pub open_time: Duration,
    /// Every breaker that read open when the watch began, by (service,
    /// target), with how long it went on reading open: until the first read
    /// that showed it half-open or closed, or to the end of the watch.
    pub read_open: BTreeMap<(String, String), Duration>,
    /// A [`Finding::BreakerStale`] for each breaker still open at the end;
    /// a [`Finding::Unreadable`] for a `/metrics` that could not be read
    /// when it mattered.
    pub findings: Vec<Finding>,
}

impl BreakerWatch {
    /// Whether every breaker left the open state in time.
    pub fn holds(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Reads every service's `/metrics` and watches each breaker that reads
/// open (1), with no traffic the caller has not stopped, until it reads
/// half-open or closed; one still open after [`GRACE_FACTOR`] times the
/// platform's [`open_time`] is a [`Finding::BreakerStale`]. Returns at
/// once when none reads open.
///
/// # Errors
/// When `eco`'s file states no open time (see [`open_time`]).
pub async fn watch_open_breakers(
    eco: &Ecosystem,
    platform: &Platform,
) -> Result<BreakerWatch, String> {
    let open_time = open_time(eco.file())?;
    Ok(watch(platform, &metric_services(eco), open_time).await)
}

/// The breakers of `service`'s `/metrics`: target → gauge.
async fn read(platform: &Platform, service: &str) -> Result<BTreeMap<String, i64>, Finding> {
    let unreadable = |error: String| Finding::Unreadable {
        what: format!("{service} /metrics"),
        error,
    };
    match platform.get_public(service, "/metrics").await {
        Ok(answer) if answer.ok() => Ok(breaker_states(answer.body.as_str().unwrap_or_default())
            .into_iter()
            .collect()),
        Ok(answer) => Err(unreadable(format!("answered {}", answer.status))),
        Err(e) => Err(unreadable(error_chain(&e))),
    }
}

async fn watch(platform: &Platform, services: &[String], open_time: Duration) -> BreakerWatch {
    let limit = open_time * GRACE_FACTOR;
    let started = Instant::now();
    let mut findings = Vec::new();
    let mut open: BTreeSet<(String, String)> = BTreeSet::new();
    for service in services {
        match read(platform, service).await {
            Ok(states) => open.extend(
                states
                    .into_iter()
                    .filter(|(_, state)| *state == 1)
                    .map(|(target, _)| (service.clone(), target)),
            ),
            Err(finding) => findings.push(finding),
        }
    }
    let mut read_open = BTreeMap::new();
    // The last failed read of a service, while it still has open breakers.
    let mut failed: BTreeMap<String, Finding> = BTreeMap::new();
    while !open.is_empty() && started.elapsed() < limit {
        tokio::time::sleep(POLL.min(limit.saturating_sub(started.elapsed()))).await;
        let watched: BTreeSet<String> = open.iter().map(|(s, _)| s.clone()).collect();
        for service in watched {
            let states = match read(platform, &service).await {
                Ok(states) => states,
                Err(finding) => {
                    failed.insert(service, finding);
                    continue;
                }
            };
            failed.remove(&service);
            let left: Vec<(String, String)> = open
                .iter()
                .filter(|(s, target)| *s == service && states.get(target) != Some(&1))
                .cloned()
                .collect();
            for key in left {
                open.remove(&key);
                read_open.insert(key, started.elapsed());
            }
        }
    }
    let waited = started.elapsed();
    for (service, target) in open {
        match failed.get(&service) {
            Some(finding) => {
                if !findings.contains(finding) {
                    findings.push(finding.clone());
                }
            }
            None => findings.push(Finding::BreakerStale {
                service: service.clone(),
                target: target.clone(),
                read_open: waited,
                open_time,
            }),
        }
        read_open.insert((service, target), waited);
    }
    findings.sort();
    BreakerWatch {
        open_time,
        read_open,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::routing::get;

    use super::*;

    /// Serves `/metrics` with `circuit_breaker_state` lines from `page`
    /// (given how many reads came before); its base URL.
    async fn service(page: impl Fn(usize) -> String + Send + Sync + 'static) -> String {
        let page = Arc::new(page);
        let reads = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/metrics",
            get(move || {
                let page = Arc::clone(&page);
                let before = reads.fetch_add(1, Ordering::SeqCst);
                async move { page(before) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn gauge(target: &str, state: i64) -> String {
        format!("circuit_breaker_state{{target=\"{target}\"}} {state}\n")
    }

    #[tokio::test]
    async fn a_breaker_still_open_after_the_grace_is_stale_and_one_that_moves_on_is_not() {
        let open_time = Duration::from_millis(200);
        // Open at the first read, half-open at the next: what a breaker
        // whose time passed between two reads shows.
        let honest = service(|before| {
            let stripe = if before == 0 { 1 } else { 2 };
            gauge("stripe", stripe) + &gauge("graph", 0)
        })
        .await;
        let stale = service(|_| gauge("crm-api", 1)).await;
        let urls = BTreeMap::from([
            ("crm-api".to_owned(), honest),
            ("flow-api".to_owned(), stale),
            // Nothing listens on port 9.
            ("worker".to_owned(), "http://127.0.0.1:9".to_owned()),
        ]);
        let platform = Platform::new(urls, "admin".into()).expect("platform");
        let services: Vec<String> = ["crm-api", "flow-api", "worker"].map(String::from).into();
        let started = Instant::now();
        let seen = watch(&platform, &services, open_time).await;
        let limit = open_time * GRACE_FACTOR;
        assert!(started.elapsed() >= limit, "it waited out the grace");
        let key = |s: &str, t: &str| (s.to_owned(), t.to_owned());
        assert!(
            seen.read_open.contains_key(&key("crm-api", "stripe")),
            "{seen:?}"
        );
        assert!(seen.read_open[&key("flow-api", "crm-api")] >= limit);
        assert_eq!(
            seen.read_open.len(),
            2,
            "closed breakers are not watched: {seen:?}"
        );
        assert!(!seen.holds());
        let [stale, unreadable]: [Finding; 2] =
            seen.findings.clone().try_into().expect("two findings");
        assert!(
            matches!(&unreadable, Finding::Unreadable { what, .. } if what == "worker /metrics"),
            "{unreadable}"
        );
        let Finding::BreakerStale {
            service,
            target,
            read_open,
            open_time: stated,
        } = &stale
        else {
            panic!("{stale}");
        };
        assert_eq!(
            (service.as_str(), target.as_str(), *stated),
            ("flow-api", "crm-api", open_time)
        );
        assert!(*read_open >= limit);
        let text = stale.to_string();
        assert!(
            text.starts_with("flow-api's circuit breaker for crm-api has read open for 0.")
                && text.contains("with no traffic, though the platform's breakers open for 200ms (`breaker-open-secs`)")
                && text.ends_with("its circuit_breaker_state is stale"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn no_open_breaker_ends_the_watch_at_once() {
        let closed = service(|_| gauge("stripe", 0) + &gauge("graph", 2)).await;
        let platform = Platform::new(
            BTreeMap::from([("crm-api".to_owned(), closed)]),
            "admin".into(),
        )
        .expect("platform");
        let seen = watch(&platform, &["crm-api".to_owned()], Duration::from_secs(60)).await;
        assert!(seen.holds() && seen.read_open.is_empty(), "{seen:?}");
    }

    #[test]
    fn the_open_time_is_the_ecosystem_files() {
        let parse = |vars: &str| {
            let text = format!("[vars]\n{vars}\n[component.redis]\nkind = \"redis\"\n");
            let file = EcosystemFile::parse(std::path::Path::new("ecosystem.toml"), &text)
                .expect("the file parses");
            open_time(&file)
        };
        assert_eq!(
            parse("breaker-open-secs = \"5\""),
            Ok(Duration::from_secs(5))
        );
        assert_eq!(
            parse("breaker-open-secs = \"5s\""),
            Err("`breaker-open-secs` of the ecosystem file's [vars] is \"5s\", not a whole number of seconds".into())
        );
        assert_eq!(
            parse(""),
            Err("the ecosystem file states no breaker open time: its [vars] has no `breaker-open-secs`".into())
        );
    }
}
