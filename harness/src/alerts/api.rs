//! A client of a running Prometheus's HTTP API, for alerts.
//!
//! Two views, because they answer different questions:
//!
//! - `/api/v1/alerts`: what is pending or firing *now* (with `activeAt`,
//!   when its expression first held); [`Prometheus::wait_for`] polls it.
//! - the `ALERTS{alertstate="firing"}` series over a time range
//!   (`/api/v1/query_range`, one-second steps): which alerts fired during a
//!   run, when, and when they resolved; [`Prometheus::fired`]. Prometheus
//!   writes that series at each evaluation (every second in the harness's
//!   configuration) and ends it when the alert resolves, so a gap in it is
//!   a resolution and times are good to a step.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::env::{Ecosystem, Kind};

/// How often [`Prometheus::wait_for`] asks.
const POLL: Duration = Duration::from_millis(250);

/// Why Prometheus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("failed to ask Prometheus at {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Prometheus at {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("failed to read Prometheus's answer from {url}: {why}")]
    Decode { url: String, why: String },
    /// A wait's deadline passed; `seen` is what was active at the last look.
    #[error("{what} did not happen within {within:?}; active alerts at the last look: {seen}")]
    Timeout {
        what: String,
        within: Duration,
        seen: String,
    },
}

/// Pending (its expression holds, `for:` not yet over) or firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    /// Prometheus 2.42 lists only the two above; later ones may add states.
    #[serde(other)]
    Other,
}

/// An alert pending or firing now.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveAlert {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// When its expression first held.
    pub active_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub value: String,
}

impl ActiveAlert {
    /// Its `alertname`.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// Whether it is the alert `name` with every label of `labels`,
    /// pending or firing.
    pub fn is(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name() == name
            && labels
                .iter()
                .all(|(k, v)| self.labels.get(*k).is_some_and(|have| have == v))
    }

    /// Whether it is firing and has every label of `labels`.
    pub fn is_firing(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.state == AlertState::Firing && self.is(name, labels)
    }
}

/// One firing of an alert during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FiredAlert {
    pub name: String,
    /// Its labels but `alertname` and `alertstate`.
    pub labels: BTreeMap<String, String>,
    /// The first evaluation it was firing at.
    pub fired_at: DateTime<Utc>,
    /// The first evaluation it was no longer firing at; `None` when it
    /// still fired at the end of the range.
    pub resolved_at: Option<DateTime<Utc>>,
}

impl FiredAlert {
    /// One line: `Name{k=v,...} fired at +12.0 s, resolved at +40.0 s`
    /// (seconds after `since`).
    pub fn describe(&self, since: DateTime<Utc>) -> String {
        let at = |t: DateTime<Utc>| (t - since).num_milliseconds() as f64 / 1000.0;
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}{{{}}} fired at +{:.0} s, {}",
            self.name,
            labels.join(","),
            at(self.fired_at),
            match self.resolved_at {
                Some(t) => format!("resolved at +{:.0} s", at(t)),
                None => "still firing at the end".into(),
            }
        )
    }
}

/// The alerts a run's Prometheus fired, for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AlertLog {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Where it was read (the Prometheus's URL).
    pub source: String,
    pub fired: Vec<FiredAlert>,
    /// Why the log is empty or incomplete (Prometheus did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AlertLog {
    /// What the ecosystem's Prometheus fired from `from` to now; `None`
    /// when the ecosystem runs no Prometheus (it was not asked for).
    pub async fn of_run(eco: &Ecosystem, from: SystemTime) -> Option<AlertLog> {
        let prometheus = eco.prometheus()?;
        let to = SystemTime::now();
        let (fired, error) = match prometheus.fired(from, to).await {
            Ok(fired) => (fired, None),
            Err(e) => (Vec::new(), Some(crate::env::error_chain(&e))),
        };
        Some(AlertLog {
            from: from.into(),
            to: to.into(),
            source: prometheus.url().to_owned(),
            fired,
            error,
        })
    }

    /// Lines for people: one per firing, or why there are none.
    pub fn lines(&self) -> Vec<String> {
        if let Some(error) = &self.error {
            return vec![format!("alerts could not be read: {error}")];
        }
        if self.fired.is_empty() {
            return vec!["no alert fired".into()];
        }
        self.fired.iter().map(|f| f.describe(self.from)).collect()
    }
}

/// A Prometheus's HTTP API.
#[derive(Debug, Clone)]
pub struct Prometheus {
    url: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct AlertsData {
    alerts: Vec<ActiveAlert>,
}

#[derive(Deserialize)]
struct RulesData {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    name: String,
    /// An alerting rule's `for:`, in seconds.
    #[serde(default)]
    duration: f64,
}

#[derive(Deserialize)]
struct Matrix {
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

impl Prometheus {
    /// The Prometheus at `url` (e.g. `http://127.0.0.1:9090`).
    pub fn new(url: impl Into<String>, http: reqwest::Client) -> Self {
        Self {
            url: url.into().trim_end_matches('/').to_owned(),
            http,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, AlertsError> {
        let url = format!("{}{path}", self.url);
        let response = self
            .http
            .get(&url)
            .query(query)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|source| AlertsError::Http {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let body = response.text().await.map_err(|source| AlertsError::Http {
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(AlertsError::Status {
                url,
                status: status.as_u16(),
                body: body.chars().take(500).collect(),
            });
        }
        serde_json::from_str::<Envelope<T>>(&body)
            .map(|e| e.data)
            .map_err(|e| AlertsError::Decode {
                url,
                why: e.to_string(),
            })
    }

    /// The alerts pending or firing now.
    pub async fn active(&self) -> Result<Vec<ActiveAlert>, AlertsError> {
        Ok(self.get::<AlertsData>("/api/v1/alerts", &[]).await?.alerts)
    }

    /// The `for:` of the loaded alerting rule `name` (how long its
    /// expression must hold before it fires), or `None` when no rule of
    /// that name is loaded.
    pub async fn rule_hold(&self, name: &str) -> Result<Option<Duration>, AlertsError> {
        let rules: RulesData = self
            .get("/api/v1/rules", &[("type", "alert".to_owned())])
            .await?;
        Ok(rules
            .groups
            .into_iter()
            .flat_map(|g| g.rules)
            .find(|r| r.name == name)
            .map(|r| Duration::from_secs_f64(r.duration.max(0.0))))
    }

    /// Polls [`Self::active`] until `until` holds of it (returned), or
    /// fails after `within` naming `what` and the alerts last seen. A
    /// failed look is retried until the deadline.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        until: impl Fn(&[ActiveAlert]) -> bool,
    ) -> Result<Vec<ActiveAlert>, AlertsError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let seen = match self.active().await {
                Ok(alerts) if until(&alerts) => return Ok(alerts),
                Ok(alerts) => describe_active(&alerts),
                Err(e) => format!("(Prometheus did not answer: {e})"),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(AlertsError::Timeout {
                    what: what.to_owned(),
                    within,
                    seen,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every firing of every alert between `from` and `to`, by start.
    pub async fn fired(
        &self,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Vec<FiredAlert>, AlertsError> {
        let (start, until) = (secs(from), secs(to).max(secs(from)));
        let (end, step) = range_end(start, until);
        let matrix: Matrix = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", r#"ALERTS{alertstate="firing"}"#.to_owned()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{step}")),
                ],
            )
            .await?;
        // A range ending now may end before the step that would show the
        // last resolution: then what fires now says it.
        let now = secs(SystemTime::now());
        let active = if now - until < 2.0 * step {
            Some(self.active().await?)
        } else {
            None
        };
        let mut fired = firings(matrix.result, start, step, end, active.as_deref());
        fired.sort_by(|a, b| a.fired_at.cmp(&b.fired_at).then(a.name.cmp(&b.name)));
        Ok(fired)
    }
}

/// Seconds since the epoch.
fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The end and step of a range query from `start` to `until` (seconds):
/// whole seconds or more, at most 10,001 points (Prometheus answers at
/// most 11,000 per series). Points fall on whole steps from `start`, so
/// the range ends on the first at or after `until`: else an alert that
/// began firing within the last step before `until` has no point (an
/// alert log read right after an alert fired missed it).
fn range_end(start: f64, until: f64) -> (f64, f64) {
    let step = ((until - start) / 10_000.0).max(1.0).ceil();
    (start + ((until - start) / step).ceil() * step, step)
}

/// Splits each `ALERTS` series into firings: a gap of more than a step
/// between samples is a resolution, and so is a series that has no sample
/// at the range's last step (Prometheus ends the series when the alert
/// resolves). A resolution after that last step shows only in what fires
/// now (`active`, given when the range ends now): a last firing not among
/// them has resolved too.
fn firings(
    series: Vec<Series>,
    start: f64,
    step: f64,
    end: f64,
    active: Option<&[ActiveAlert]>,
) -> Vec<FiredAlert> {
    let last_step = start + ((end - start) / step).floor() * step;
    let time = |t: f64| {
        DateTime::<Utc>::from_timestamp_millis((t * 1000.0).round() as i64).unwrap_or_default()
    };
    let mut out = Vec::new();
    for s in series {
        let mut labels = s.metric;
        let name = labels.remove("alertname").unwrap_or_default();
        labels.remove("alertstate");
        labels.remove("__name__");
        let fires_now = active.is_none_or(|active| {
            active.iter().any(|a| {
                a.state == AlertState::Firing
                    && a.name() == name
                    && labels.iter().all(|(k, v)| a.labels.get(k) == Some(v))
            })
        });
        let mut run: Option<(f64, f64)> = None;
        for (t, _) in s.values {
            run = match run {
                Some((first, last)) if t - last <= step * 1.5 => Some((first, t)),
                Some((first, last)) => {
                    out.push(FiredAlert {
                        name: name.clone(),
                        labels: labels.clone(),
                        fired_at: time(first),
                        resolved_at: Some(time(last + step)),
                    });
                    Some((t, t))
                }
                None => Some((t, t)),
            };
        }
        if let Some((first, last)) = run {
            out.push(FiredAlert {
                name: name.clone(),
                labels: labels.clone(),
                fired_at: time(first),
                resolved_at: (last < last_step - step / 2.0 || !fires_now)
                    .then(|| time(last + step)),
            });
        }
    }
    out
}

fn describe_active(alerts: &[ActiveAlert]) -> String {
    if alerts.is_empty() {
        return "none".into();
    }
    alerts
        .iter()
        .map(|a| {
            let labels: Vec<String> = a
                .labels
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{}{{{}}} {:?}", a.name(), labels.join(","), a.state)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Ecosystem {
    /// The ecosystem's Prometheus (its first `kind = "prometheus"`
    /// component), or `None` when it runs none (not asked for, see
    /// [`crate::env::prometheus`]).
    pub fn prometheus(&self) -> Option<Prometheus> {
        let c = self
            .components()
            .find(|c| c.kind == Kind::Prometheus && c.offered())?;
        let http = self.tls().http().build().ok()?;
        Some(Prometheus::new(c.url()?, http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, times: &[f64]) -> Series {
        Series {
            metric: [
                ("alertname".to_owned(), name.to_owned()),
                ("alertstate".to_owned(), "firing".to_owned()),
                ("job".to_owned(), "crm-api".to_owned()),
            ]
            .into(),
            values: times.iter().map(|t| (*t, "1".to_owned())).collect(),
        }
    }

    #[test]
    fn a_gap_in_the_series_is_a_resolution() {
        let fired = firings(
            vec![series("BreakerOpen", &[100.0, 101.0, 102.0, 110.0, 111.0])],
            100.0,
            1.0,
            111.0,
            None,
        );
        assert_eq!(fired.len(), 2, "{fired:?}");
        assert_eq!(fired[0].fired_at.timestamp(), 100);
        assert_eq!(fired[0].resolved_at.map(|t| t.timestamp()), Some(103));
        assert_eq!(fired[1].fired_at.timestamp(), 110);
        assert_eq!(fired[1].resolved_at, None, "still firing at the end");
        assert_eq!(
            fired[0].labels.get("job").map(String::as_str),
            Some("crm-api")
        );
        assert!(!fired[0].labels.contains_key("alertstate"));
    }

    #[test]
    fn a_firing_that_ended_before_the_range_did_is_resolved() {
        let fired = firings(
            vec![series("QueueTooOld", &[10.0, 11.0])],
            5.0,
            1.0,
            30.0,
            None,
        );
        assert_eq!(fired[0].resolved_at.map(|t| t.timestamp()), Some(12));
        let since = DateTime::<Utc>::from_timestamp(5, 0).unwrap();
        assert_eq!(
            fired[0].describe(since),
            "QueueTooOld{job=crm-api} fired at +5 s, resolved at +7 s"
        );
    }

    #[test]
    fn a_series_that_ended_at_the_last_step_is_resolved_even_just_after() {
        let fired = firings(
            vec![series("BreakerOpen", &[10.0, 11.0])],
            5.0,
            1.0,
            12.4,
            None,
        );
        assert_eq!(fired[0].resolved_at.map(|t| t.timestamp()), Some(12));
        let firing = firings(
            vec![series("BreakerOpen", &[10.0, 11.0, 12.0])],
            5.0,
            1.0,
            12.4,
            None,
        );
        assert_eq!(firing[0].resolved_at, None);
    }

    #[test]
    fn a_resolution_after_the_last_step_shows_in_what_fires_now() {
        let sample = || vec![series("BreakerOpen", &[11.0, 12.0])];
        let nothing_fires = firings(sample(), 5.0, 1.0, 12.4, Some(&[]));
        assert_eq!(
            nothing_fires[0].resolved_at.map(|t| t.timestamp()),
            Some(13)
        );
        let it_fires = ActiveAlert {
            labels: [
                ("alertname".to_owned(), "BreakerOpen".to_owned()),
                ("job".to_owned(), "crm-api".to_owned()),
            ]
            .into(),
            annotations: BTreeMap::new(),
            state: AlertState::Firing,
            active_at: None,
            value: String::new(),
        };
        let still = firings(sample(), 5.0, 1.0, 12.4, Some(&[it_fires]));
        assert_eq!(still[0].resolved_at, None);
    }

    #[test]
    fn the_range_ends_on_a_step_at_or_after_its_end() {
        // 0.4 s past the last whole step: one more step, which sees an
        // alert that began firing 0.3 s before the end.
        assert_eq!(range_end(100.0, 112.4), (113.0, 1.0));
        assert_eq!(range_end(100.0, 112.0), (112.0, 1.0));
        assert_eq!(range_end(100.0, 100.0), (100.0, 1.0));
        // A long range takes longer steps, still ending at or after it.
        let (end, step) = range_end(0.0, 30_000.5);
        assert_eq!(step, 4.0);
        assert!((30_000.5..30_004.5).contains(&end), "{end}");
        assert!(end / step <= 10_001.0);
    }

    #[test]
    fn the_alerts_answer_is_read() {
        let body = r#"{"status":"success","data":{"alerts":[{"labels":{"alertname":"CircuitBreakerOpen","job":"crm-api","target":"stripe"},"annotations":{"summary":"x"},"state":"firing","activeAt":"2024-05-01T10:00:00.5Z","value":"1e+00"}]}}"#;
        let data: Envelope<AlertsData> = serde_json::from_str(body).unwrap();
        let alert = &data.data.alerts[0];
        assert!(alert.is_firing("CircuitBreakerOpen", &[("target", "stripe")]));
        assert!(!alert.is_firing("CircuitBreakerOpen", &[("target", "graph")]));
        assert_eq!(alert.active_at.map(|t| t.timestamp()), Some(1_714_557_600));
    }
}
