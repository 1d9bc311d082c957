//! What a load run measured, in a form that merges: `load.json`.
//!
//! Every latency is kept as a [`Histogram`] beside the percentiles read
//! from it, so [`LoadReport::merge`] of several machines' reports adds
//! counts and histograms and reads the percentiles again from the union;
//! the percentiles in the file are for people and dashboards, the
//! histograms are the truth. The verdicts are judged again on every merge.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::hist::Histogram;
use super::shard::Shard;
use super::thresholds::{evaluate, Thresholds, Verdict};
use super::LoadError;

/// The version of the `load.json` format; `load merge` refuses others.
pub const FORMAT_VERSION: u32 = 1;

/// One request kind (`POST /leads`, `GET /contacts`, `WS connect /events`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindStats {
    pub name: String,
    pub count: u64,
    pub errors: u64,
    /// Read from `histogram`; written for readers, recomputed on load.
    pub latency_ms: Percentiles,
    pub histogram: Histogram,
}

impl KindStats {
    /// A kind from its histogram (every request, failed or not) and errors.
    pub fn new(name: impl Into<String>, errors: u64, histogram: Histogram) -> Self {
        Self {
            name: name.into(),
            count: histogram.count,
            errors,
            latency_ms: Percentiles::of(&histogram),
            histogram,
        }
    }
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram) -> Self {
        Self {
            p50: h.percentile_ms(50.0),
            p95: h.percentile_ms(95.0),
            p99: h.percentile_ms(99.0),
            max: h.max_ms(),
            mean: h.mean_ms(),
        }
    }
}

/// Time from a lead's `201 Created` to its LEAD_CREATED event reaching the
/// gateway's clients: the lead-processing queue and the worker, end to end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    /// Leads whose event arrived.
    pub processed: u64,
    /// Leads whose event had not arrived when waiting for it ended (the
    /// queue latency limit after the lead's creation).
    pub unprocessed: u64,
    pub histogram: Histogram,
}

/// WebSocket fan-out: every subscribed client should receive every event
/// of its tenant. Latency is from the event's `timestamp` (set when it is
/// published) to its arrival at a client; against a remote deployment it
/// includes the clocks' difference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStats {
    /// Clients subscribed, over all tenants.
    pub clients: u64,
    pub expected: u64,
    pub delivered: u64,
    pub missed: u64,
    pub histogram: Histogram,
}

/// A load run's report (`load.json`), or the merge of several.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    pub version: u32,
    pub profile: String,
    /// Where each report came from (the machine's host name); several after
    /// a merge.
    pub machines: Vec<String>,
    /// The part of a plan this run made (`--shard`); none after a merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// The shards a merge is made of, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<Shard>,
    pub started_at: String,
    /// The flow-api, crm-api and gateway URLs loaded.
    pub targets: Vec<String>,
    /// Simulated users (summed over machines).
    pub users: u64,
    /// Seconds the load ran (the longest, after a merge).
    pub run_time_s: f64,
    /// HTTP requests per second (summed over machines, which ran at once).
    pub requests_per_second: f64,
    /// All HTTP request kinds together.
    pub total: KindStats,
    pub requests: Vec<KindStats>,
    pub queue_latency: Option<QueueStats>,
    pub event_delivery: Option<DeliveryStats>,
    /// The first failures (status and body), to say why requests failed.
    #[serde(default)]
    pub error_samples: Vec<String>,
    /// The alerts the ecosystem's Prometheus fired during the run, when
    /// one ran (`--prometheus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<crate::alerts::AlertLog>,
    pub thresholds: Thresholds,
    pub verdicts: Vec<Verdict>,
    pub passed: bool,
}

impl LoadReport {
    /// Fills in what is derived (totals, percentiles, verdicts) from the
    /// counts and histograms, judging against `limits`.
    pub fn judge(&mut self, limits: Thresholds) {
        self.requests.sort_by(|a, b| a.name.cmp(&b.name));
        let mut total = Histogram::new();
        let mut errors = 0;
        for kind in &mut self.requests {
            *kind = KindStats::new(
                std::mem::take(&mut kind.name),
                kind.errors,
                std::mem::take(&mut kind.histogram),
            );
            total.merge(&kind.histogram);
            errors += kind.errors;
        }
        self.total = KindStats::new("all requests", errors, total);
        self.thresholds = limits;
        self.verdicts = evaluate(self, &limits);
        self.passed = self.verdicts.iter().all(|v| v.passed);
    }

    /// The verdicts that failed.
    pub fn breaches(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| !v.passed)
    }

    /// Merges reports of runs made at the same time on several machines:
    /// counts, histograms, users and requests/s add up, the run time is the
    /// longest; then everything is judged again against `limits` (by
    /// default the first report's).
    ///
    /// A report given twice, or two reports of the same shard, would count
    /// a run twice: both are refused, as are shards of plans split in
    /// different numbers of parts.
    pub fn merge(reports: &[LoadReport], limits: Option<Thresholds>) -> Result<Self, LoadError> {
        let Some(first) = reports.first() else {
            return Err(LoadError::Merge("no report to merge".into()));
        };
        check_distinct(reports)?;
        let mut merged = LoadReport {
            version: FORMAT_VERSION,
            profile: first.profile.clone(),
            started_at: first.started_at.clone(),
            ..LoadReport::default()
        };
        for r in reports {
            if r.version != FORMAT_VERSION {
                return Err(LoadError::Merge(format!(
                    "a report has format version {}, this harness reads {FORMAT_VERSION}",
                    r.version
                )));
            }
            if r.profile != merged.profile {
                return Err(LoadError::Merge(format!(
                    "reports of different profiles (`{}` and `{}`) do not merge",
                    merged.profile, r.profile
                )));
            }
            merged.started_at = merged.started_at.clone().min(r.started_at.clone());
            merged.machines.extend(r.machines.iter().cloned());
            // Shards load one deployment: the first Prometheus's view.
            if merged.alerts.is_none() {
                merged.alerts.clone_from(&r.alerts);
            }
            merged.shards.extend(r.shard.iter().copied());
            merged.shards.extend(r.shards.iter().copied());
            for t in &r.targets {
                if !merged.targets.contains(t) {
                    merged.targets.push(t.clone());
                }
            }
            merged.users += r.users;
            for sample in &r.error_samples {
                if merged.error_samples.len() < 10 {
                    merged.error_samples.push(sample.clone());
                }
            }
            merged.run_time_s = merged.run_time_s.max(r.run_time_s);
            merged.requests_per_second += r.requests_per_second;
            for kind in &r.requests {
                match merged.requests.iter_mut().find(|k| k.name == kind.name) {
                    Some(k) => {
                        k.errors += kind.errors;
                        k.histogram.merge(&kind.histogram);
                    }
                    None => merged.requests.push(kind.clone()),
                }
            }
            if let Some(q) = &r.queue_latency {
                let m = merged.queue_latency.get_or_insert_with(QueueStats::default);
                m.processed += q.processed;
                m.unprocessed += q.unprocessed;
                m.histogram.merge(&q.histogram);
            }
            if let Some(d) = &r.event_delivery {
                let m = merged
                    .event_delivery
                    .get_or_insert_with(DeliveryStats::default);
                m.clients += d.clients;
                m.expected += d.expected;
                m.delivered += d.delivered;
                m.missed += d.missed;
                m.histogram.merge(&d.histogram);
            }
        }
        merged.shards.sort();
        merged.judge(limits.unwrap_or(first.thresholds));
        Ok(merged)
    }

    /// The shards of the plan a merge lacks (none for unsharded runs).
    pub fn missing_shards(&self) -> Vec<Shard> {
        let Some(count) = self.shards.first().map(|s| s.count) else {
            return Vec::new();
        };
        (0..count)
            .map(|index| Shard { index, count })
            .filter(|s| !self.shards.contains(s))
            .collect()
    }

    /// Reads a `load.json`.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::ReadReport {
            path: path.to_owned(),
            source: source.into(),
        })?;
        serde_json::from_str(&text).map_err(|source| LoadError::ReadReport {
            path: path.to_owned(),
            source: source.into(),
        })
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        Ok(text)
    }

    /// Writes `load.json` and `load.html` into `dir` (created if missing),
    /// each replacing its previous version atomically; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
        self.write_as(dir, "load")
    }

    /// [`Self::write`] with another base name (`merged` gives
    /// `merged.json` and `merged.html`).
    pub fn write_as(&self, dir: &Path, base: &str) -> Result<Vec<PathBuf>, LoadError> {
        std::fs::create_dir_all(dir).map_err(|source| LoadError::WriteReport {
            path: dir.to_owned(),
            source,
        })?;
        let json = self.to_json().map_err(|e| LoadError::WriteReport {
            path: dir.join(format!("{base}.json")),
            source: std::io::Error::other(e),
        })?;
        let mut written = Vec::new();
        for (name, contents) in [
            (format!("{base}.json"), json),
            (format!("{base}.html"), super::html::render(self)),
        ] {
            let path = dir.join(name);
            crate::report::write_atomically(&path, contents.as_bytes()).map_err(|source| {
                LoadError::WriteReport {
                    path: path.clone(),
                    source,
                }
            })?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Refuses a report given twice and two reports of one shard.
fn check_distinct(reports: &[LoadReport]) -> Result<(), LoadError> {
    let mut shards: Vec<(Shard, &[String])> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        if reports[..i].contains(r) {
            return Err(LoadError::Merge(format!(
                "the report of {} (started {}) is given twice; each run counts once",
                r.machines.join(", "),
                r.started_at
            )));
        }
        for &shard in r.shard.iter().chain(&r.shards) {
            if let Some((_, other)) = shards.iter().find(|(s, _)| *s == shard) {
                return Err(LoadError::Merge(format!(
                    "shard {shard} is in two reports ({} and {}); each shard's report is merged once",
                    other.join(", "),
                    r.machines.join(", ")
                )));
            }
            if let Some((s, other)) = shards.iter().find(|(s, _)| s.count != shard.count) {
                return Err(LoadError::Merge(format!(
                    "shard {shard} ({}) and shard {s} ({}) are parts of plans split differently",
                    r.machines.join(", "),
                    other.join(", ")
                )));
            }
            shards.push((shard, &r.machines));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn run(machine: &str, leads_ms: &[u64], rps: f64) -> LoadReport {
        let mut h = Histogram::new();
        for &ms in leads_ms {
            h.record(Duration::from_millis(ms));
        }
        let mut r = LoadReport {
            version: FORMAT_VERSION,
            profile: "lead-creation".into(),
            machines: vec![machine.into()],
            users: 4,
            run_time_s: 10.0,
            requests_per_second: rps,
            requests: vec![KindStats::new("POST /leads", 1, h)],
            ..LoadReport::default()
        };
        r.judge(Thresholds::default());
        r
    }

    #[test]
    fn a_merge_sums_counts_and_reads_percentiles_from_the_union() {
        // One error in 200 (0.5 %) and a fast p95.
        let a = run("a", &[10; 200], 9.5);
        let mut slow = vec![10; 80];
        slow.extend([800; 20]);
        let b = run("b", &slow, 10.0);
        assert!(a.passed && !b.passed);
        let m = LoadReport::merge(&[a, b], None).unwrap();
        assert_eq!(m.total.count, 300);
        assert_eq!(m.total.errors, 2);
        assert_eq!(m.users, 8);
        assert_eq!(m.machines, ["a", "b"]);
        assert!((m.requests_per_second - 19.5).abs() < 1e-9);
        // 20 of 300 (6.7 %) are slow, so the union's p95 is slow.
        assert!(m.requests[0].latency_ms.p95 > 700.0, "{:?}", m.requests[0]);
        assert!(!m.passed);
        assert!(m.breaches().any(|v| v.rule == "p95 of POST /leads"));
    }

    #[test]
    fn reports_of_different_profiles_do_not_merge() {
        let a = run("a", &[1], 1.0);
        let mut b = run("b", &[1], 1.0);
        b.profile = "mixed".into();
        let err = LoadReport::merge(&[a, b], None).unwrap_err();
        assert!(err.to_string().contains("different profiles"), "{err}");
    }

    fn shard(machine: &str, shard: &str) -> LoadReport {
        let mut r = run(machine, &[10, 20], 2.0);
        r.shard = Some(shard.parse().unwrap());
        r
    }

    #[test]
    fn shards_merge_once_each_and_the_missing_are_named() {
        let m = LoadReport::merge(&[shard("b", "2/3"), shard("a", "0/3")], None).unwrap();
        assert_eq!(m.shards, ["0/3".parse().unwrap(), "2/3".parse().unwrap()]);
        assert_eq!(m.missing_shards(), ["1/3".parse().unwrap()]);
        assert_eq!(m.shard, None);
        // A merge of merges keeps the shards, and still refuses repeats.
        let all = LoadReport::merge(&[m.clone(), shard("c", "1/3")], None).unwrap();
        assert!(all.missing_shards().is_empty());
        let err = LoadReport::merge(&[m, shard("d", "2/3")], None).unwrap_err();
        assert!(
            err.to_string().contains("shard 2/3 is in two reports"),
            "{err}"
        );
    }

    #[test]
    fn a_shard_twice_or_a_report_twice_is_refused() {
        let err = LoadReport::merge(&[shard("a", "1/3"), shard("b", "1/3")], None).unwrap_err();
        assert!(
            err.to_string()
                .contains("shard 1/3 is in two reports (a and b)"),
            "{err}"
        );
        let err = LoadReport::merge(&[shard("a", "1/3"), shard("b", "0/2")], None).unwrap_err();
        assert!(err.to_string().contains("split differently"), "{err}");
        let a = run("a", &[1, 2], 1.0);
        let err = LoadReport::merge(&[a.clone(), a], None).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
    }

    #[test]
    fn a_report_survives_json_and_back() {
        let a = run("a", &[3, 4, 5], 3.0);
        let back: LoadReport = serde_json::from_str(&a.to_json().unwrap()).unwrap();
        assert_eq!(back, a);
    }
}
