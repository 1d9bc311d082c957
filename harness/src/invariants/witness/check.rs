//! The witness's end-of-run look: frames, jobs and events, mock calls,
//! and its fingerprints again.

use super::report::{WitnessFinding, WitnessReport};
use super::{journal, short, table_print, Live};

impl Live {
    pub(super) async fn check(&self, report: &mut WitnessReport) {
        let me = self.tenant.id.as_str();
        for ((app, sub), &baseline) in self.subs.iter().zip(&self.baseline) {
            for (i, event) in sub.events().iter().enumerate() {
                let own = event["tenantId"] == me;
                if own && i < baseline {
                    continue;
                }
                report.findings.push(WitnessFinding::Frame {
                    app: app.clone(),
                    event_type: event["type"].as_str().unwrap_or("?").to_owned(),
                    tenant: event["tenantId"]
                        .as_str()
                        .map_or_else(|| event["tenantId"].to_string(), str::to_owned),
                    id: event["id"].as_str().unwrap_or("?").to_owned(),
                    own,
                });
            }
            if let Some(why) = sub.closed() {
                report.findings.push(WitnessFinding::Blind {
                    what: format!("its {app} connection"),
                    why: format!("it ended ({why}); what came after was not seen"),
                });
            }
        }
        if let Some(tail) = &self.tail {
            for entry in tail.seen().into_iter().filter(|e| e.ms() > self.cut_ms) {
                report.findings.push(if entry.job {
                    WitnessFinding::Job {
                        stream: entry.stream,
                        kind: entry.kind,
                        id: entry.id,
                        correlation: entry.detail,
                    }
                } else {
                    WitnessFinding::Published {
                        event_type: entry.kind,
                        id: entry.id,
                        source: entry.detail,
                    }
                });
            }
            if tail.gaps() > 0 {
                report.skipped.push(format!(
                    "what went onto and off a stream while the tail reconnected to Redis ({} time(s))",
                    tail.gaps()
                ));
            }
        }
        self.check_mocks(report).await;
        if let Some(pg) = &self.pg {
            for (table, before) in &self.tables {
                let after = table_print(pg, table, me).await;
                compare(report, format!("rows in {table}"), before, &after, |p| {
                    p.clone().unwrap_or_else(|| "no rows".into())
                });
            }
        }
        for (read, before) in &self.reads {
            let after = self.read(read).await;
            let what = format!(
                "{} (GET {} {} as {})",
                read.what, read.service, read.path, read.app
            );
            compare(report, what, before, &after, short);
        }
    }

    async fn check_mocks(&self, report: &mut WitnessReport) {
        let http = self.platform.http();
        for (name, admin, last) in &self.mocks {
            let entries = match journal(http, admin).await {
                Ok(entries) => entries,
                Err(e) => {
                    report.findings.push(WitnessFinding::Blind {
                        what: format!("the {name} mock's calls"),
                        why: e,
                    });
                    continue;
                }
            };
            for entry in entries.iter().filter(|e| e.seq > *last) {
                // The entry as the admin API shows it: path, query, headers, body.
                let text = serde_json::to_string(entry).unwrap_or_default();
                let naming = if text.contains(&self.tenant.id) {
                    "tenant id"
                } else if text.contains(&format!("{}-", self.prefix)) {
                    "correlation id"
                } else {
                    continue;
                };
                report.findings.push(WitnessFinding::MockCall {
                    mock: name.clone(),
                    call: format!("{} {}", entry.method, entry.path),
                    at: entry
                        .received_at
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    naming: naming.to_owned(),
                });
            }
        }
    }
}

/// A changed fingerprint as a finding; one that could not be read (before
/// or after) as blind.
fn compare<T: PartialEq>(
    report: &mut WitnessReport,
    what: String,
    before: &Result<T, String>,
    after: &Result<T, String>,
    show: impl Fn(&T) -> String,
) {
    match (before, after) {
        (Ok(b), Ok(a)) if a == b => {}
        (Ok(b), Ok(a)) => report.findings.push(WitnessFinding::Changed {
            what,
            before: show(b),
            after: show(a),
        }),
        (Err(e), _) | (_, Err(e)) => report.findings.push(WitnessFinding::Blind {
            what,
            why: e.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_prints_pass_and_changed_or_unreadable_ones_do_not() {
        let mut report = WitnessReport::default();
        let same: Result<Option<String>, String> = Ok(Some("x".into()));
        compare(&mut report, "t".into(), &same, &same.clone(), |p| {
            format!("{p:?}")
        });
        assert!(report.holds());
        compare(&mut report, "t".into(), &same, &Ok(None), |p| {
            format!("{p:?}")
        });
        compare(&mut report, "u".into(), &same, &Err("gone".into()), |p| {
            format!("{p:?}")
        });
        let text: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "the witness's t changed after the fingerprint: Some(\"x\") → None",
                "the witness could not watch u: gone"
            ]
        );
    }
}
