//! The steps that look into or act on the ecosystem's parts beside HTTP:
//! `sql`, `redis`, `mock` and `chaos`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use serde_json::Value;
use tekup_mocks::{Fault, FaultSpec};

use super::observe::Call;
use super::sql::SqlError;
use super::{check, Run, StepError};
use crate::env::{MockAdminError, MockHandle};
use crate::report::{Message, MessageKind};
use crate::scenario::model::{
    ChaosStep, MockAnswer, MockFault, MockParts, MockRequest, MockStep, RedisStep, SqlAs, SqlStep,
    Toxic,
};

impl Run<'_> {
    pub(super) async fn sql(&mut self, step: &SqlStep) -> Result<(), StepError> {
        let pool = self.pg()?;
        let tenant = match &step.run_as {
            SqlAs::Tenant(name) => Some(
                self.values
                    .tenants
                    .get(name)
                    .map(|t| t.id.clone())
                    .ok_or_else(|| format!("tenant `{name}` was not created for this run"))?,
            ),
            SqlAs::Admin => None,
        };
        let args: Vec<Value> = step
            .args
            .iter()
            .map(|a| self.values.json(a))
            .collect::<Result<_, _>>()?;
        let shown = format!(
            "{}\nas {}\nargs: {}",
            step.query,
            tenant.as_deref().map_or("admin".to_owned(), |t| format!(
                "tenant {t} (row-level security)"
            )),
            Value::Array(args.clone())
        );
        self.observe(Message {
            at_ms: self.clock.now_ms(),
            from: "harness".into(),
            to: "postgres".into(),
            kind: MessageKind::Query,
            label: step
                .query
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" "),
            correlation_id: None,
        });
        let started = Instant::now();
        let result = super::sql::query(pool, tenant.as_deref(), &step.query, &args).await;
        self.service += started.elapsed();
        let failed = |message: String, diff: Option<String>, response: Option<String>| StepError {
            message,
            diff,
            request: Some(shown.clone()),
            response,
        };
        match (result, &step.error) {
            (Err(SqlError::Db { code, message }), Some(want))
                if code == *want || message.contains(want.as_str()) =>
            {
                self.note = Some(format!("error {code}"));
                Ok(())
            }
            (Err(e), _) => Err(failed(format!("the query failed: {e}"), None, None)),
            (Ok(rows), Some(want)) => Err(failed(
                format!(
                    "expected the query to fail with `{want}`, it returned {} row(s)",
                    rows.len()
                ),
                None,
                Some(
                    Value::from(rows.into_iter().map(Value::from).collect::<Vec<_>>()).to_string(),
                ),
            )),
            (Ok(rows), None) => {
                self.note = Some(format!("{} row(s)", rows.len()));
                let Some(want) = &step.expect else {
                    return Ok(());
                };
                let want: Vec<Vec<Value>> = want
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|c| self.values.json(c))
                            .collect::<Result<_, _>>()
                    })
                    .collect::<Result<_, _>>()?;
                let first_difference = if want.len() == rows.len() {
                    want.iter().zip(&rows).enumerate().find_map(|(i, (w, g))| {
                        if w.len() != g.len() {
                            return Some(format!(
                                "row {}: {} column(s) expected, {} returned",
                                i + 1,
                                w.len(),
                                g.len()
                            ));
                        }
                        w.iter().zip(g).enumerate().find_map(|(j, (a, b))| {
                            check::cell(a, b, &format!("row {} column {}", i + 1, j + 1))
                        })
                    })
                } else {
                    Some(String::new())
                };
                let Some(why) = first_difference else {
                    return Ok(());
                };
                let as_json = |r: &[Vec<Value>]| {
                    Value::from(r.iter().cloned().map(Value::from).collect::<Vec<_>>())
                };
                let what = if want.len() == rows.len() {
                    format!(
                        "the query's {} row(s) differ from the expected ones: {why}",
                        rows.len()
                    )
                } else {
                    format!(
                        "the query returned {} row(s), {} expected",
                        rows.len(),
                        want.len()
                    )
                };
                Err(failed(
                    what,
                    Some(check::diff(&as_json(&want), &as_json(&rows))),
                    None,
                ))
            }
        }
    }

    pub(super) async fn redis(&mut self, step: &RedisStep) -> Result<(), StepError> {
        let mut redis = self
            .runner
            .redis
            .as_ref()
            .map_err(|e| StepError::from(format!("no Redis to look into: {e}")))?
            .clone();
        let started = Instant::now();
        let result = match step {
            RedisStep::QueueSize {
                queue,
                dead_letter,
                size,
            } => {
                let stream = super::queue::stream(queue, *dead_letter);
                let tenants: BTreeSet<&str> = self
                    .values
                    .tenants
                    .values()
                    .map(|t| t.id.as_str())
                    .collect();
                let (mine, all) = super::queue::tenant_jobs(&mut redis, &stream, &tenants).await?;
                self.note = Some(format!("{mine} of {all} in {stream}"));
                if mine == *size {
                    Ok(())
                } else {
                    Err(StepError::from(format!(
                        "`{stream}` holds {mine} job(s) of this scenario's tenants, expected {size} ({all} in all)"
                    )))
                }
            }
            RedisStep::Enqueue {
                queue,
                kind,
                tenant,
                payload,
            } => {
                let tenant_id = self
                    .values
                    .tenants
                    .get(tenant)
                    .map(|t| t.id.clone())
                    .ok_or_else(|| format!("tenant `{tenant}` was not created for this run"))?;
                let payload = self.values.json(payload)?;
                let correlation = self.correlation_id();
                let job = super::queue::enqueue_job(
                    &mut redis,
                    queue,
                    kind,
                    &tenant_id,
                    payload,
                    &correlation,
                )
                .await?;
                self.observe(Message {
                    at_ms: self.clock.now_ms(),
                    from: "harness".into(),
                    to: "redis".into(),
                    kind: MessageKind::Job,
                    label: format!("XADD {queue} {kind}"),
                    correlation_id: Some(correlation),
                });
                self.note = Some(format!("job {}", job["id"].as_str().unwrap_or("?")));
                Ok(())
            }
            RedisStep::Key { key, exists, value } => {
                let key = self.values.text(key)?;
                let got: Option<String> = redis
                    .get(&key)
                    .await
                    .map_err(|e| format!("GET {key}: {e} (only string keys can be checked)"))?;
                match (got, exists, value) {
                    (None, false, _) => Ok(()),
                    (Some(v), false, _) => Err(StepError::from(format!(
                        "key `{key}` exists (value `{v}`), expected it absent"
                    ))),
                    (None, true, _) => Err(StepError::from(format!("key `{key}` does not exist"))),
                    (Some(v), true, Some(want)) => {
                        let want = self.values.text(want)?;
                        if v == want {
                            Ok(())
                        } else {
                            Err(StepError {
                                message: format!("key `{key}` has another value"),
                                diff: Some(check::diff_text(&want, &v)),
                                ..StepError::default()
                            })
                        }
                    }
                    (Some(_), true, None) => Ok(()),
                }
            }
        };
        self.service += started.elapsed();
        result
    }

    pub(super) async fn mock(&mut self, step: &MockStep) -> Result<(), StepError> {
        let name = step.mock().to_owned();
        let handle = self
            .runner
            .eco
            .mock(&name)
            .map_err(|e| StepError::from(crate::env::error_chain(&e)))?;
        self.involved.insert(name.clone());
        let started = Instant::now();
        let result = match step {
            MockStep::Expect {
                request,
                answered,
                times,
                ..
            } => {
                self.expect_calls(&name, &handle, request, answered, *times)
                    .await
            }
            MockStep::ExpectNone {
                request, period, ..
            } => self.expect_none(&name, &handle, request, *period).await,
            MockStep::Set {
                request, respond, ..
            } => {
                let mut fault = Fault::status(respond.status.unwrap_or(200));
                if let Some(body) = &respond.json {
                    fault = fault.with_body(self.values.json(body)?);
                }
                self.add_fault(
                    &name,
                    &handle,
                    fault,
                    request.method.as_deref(),
                    request.path.as_deref(),
                )
                .await
            }
            MockStep::Fault {
                method,
                path,
                fault,
                times,
                ratio,
                ..
            } => {
                let mut fault = match fault {
                    MockFault::Latency(d) => Fault::latency(*d),
                    MockFault::Status { status, json } => match json {
                        Some(body) => Fault::status(*status).with_body(self.values.json(body)?),
                        None => Fault::status(*status),
                    },
                    MockFault::RateLimit { retry_after } => Fault::rate_limit(*retry_after),
                    MockFault::Reset => Fault::reset(),
                    MockFault::Malformed => Fault::malformed(),
                    MockFault::Truncated => Fault::truncated(),
                    MockFault::Stall(d) => Fault::stall(*d),
                };
                if let Some(t) = times {
                    fault = fault.times(*t);
                }
                if let Some(r) = ratio {
                    fault = fault.ratio(*r);
                }
                self.add_fault(&name, &handle, fault, method.as_deref(), path.as_deref())
                    .await
            }
            MockStep::Clear { parts, .. } => self.clear_mock(&name, &handle, *parts).await,
        };
        self.service += started.elapsed();
        result
    }

    /// `mock: expect`: the run's calls in the journal, counted.
    async fn expect_calls(
        &mut self,
        name: &str,
        handle: &MockHandle,
        request: &MockRequest,
        answered: &MockAnswer,
        times: Option<u32>,
    ) -> Result<(), StepError> {
        let filter = self.call_filter(request)?;
        let calls = super::observe::journal(self.runner, &handle.admin_url, &self.prefix).await?;
        let matching: Vec<&Call> = calls
            .iter()
            .filter(|c| {
                filter.matches(c)
                    && answered.status.is_none_or(|s| c.status == Some(s))
                    && answered
                        .fault
                        .as_ref()
                        .is_none_or(|f| c.fault.as_ref() == Some(f))
            })
            .collect();
        self.note = Some(format!("{} call(s)", matching.len()));
        let ok = match times {
            Some(t) => matching.len() == t as usize,
            None => !matching.is_empty(),
        };
        if ok {
            return Ok(());
        }
        Err(StepError {
            message: format!(
                "mock `{name}` received {} matching call(s) from this scenario, expected {}",
                matching.len(),
                times.map_or("at least 1".to_owned(), |t| t.to_string())
            ),
            response: Some(format!(
                "calls of this scenario to `{name}`:\n{}",
                shown(calls.iter())
            )),
            ..StepError::default()
        })
    }

    /// `mock: expect-none`: no matching call of the run reaches the mock
    /// within `period` from the step's start. The journal is read once at
    /// the start (what is in it then does not count: its sequence numbers
    /// are the baseline) and again until the period is over, failing on the
    /// first new match; the last read starts after the period ends, so a
    /// call journaled just before the end is seen however slow the reads are.
    async fn expect_none(
        &mut self,
        name: &str,
        handle: &MockHandle,
        request: &MockRequest,
        period: Duration,
    ) -> Result<(), StepError> {
        let filter = self.call_filter(request)?;
        let started = Instant::now();
        let deadline = started + period;
        let read = |this: &Self| {
            let http = this.runner.http.clone();
            let prefix = this.prefix.clone();
            let method = filter.method.clone();
            let path = filter.path.clone();
            async move {
                handle
                    .journal(&http, method.as_deref(), path.as_deref())
                    .await
                    .map(|entries| super::observe::calls_of_run(entries, &prefix))
                    .map_err(|e| StepError::from(format!("mock `{name}`: {e}")))
            }
        };
        let baseline = read(self).await?.iter().map(|c| c.seq).max().unwrap_or(0);
        let mut reads = 1;
        loop {
            let read_at = Instant::now();
            let calls = read(self).await?;
            reads += 1;
            let new: Vec<&Call> = calls
                .iter()
                .filter(|c| c.seq > baseline && filter.matches(c))
                .collect();
            if !new.is_empty() {
                return Err(StepError {
                    message: format!(
                        "mock `{name}` received {} matching call(s) from this scenario {:.1} s into \
                         the {:.1} s it had to receive none",
                        new.len(),
                        started.elapsed().as_secs_f64(),
                        period.as_secs_f64()
                    ),
                    response: Some(format!("the calls:\n{}", shown(new.into_iter()))),
                    ..StepError::default()
                });
            }
            if read_at >= deadline {
                self.note = Some(format!("none in {period:?} ({reads} reads)"));
                return Ok(());
            }
            let next = (Instant::now() + NONE_POLL).min(deadline);
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// `mock: clear`: empties the journal, faults and expectations (or the
    /// ones `only` names) through the admin API.
    async fn clear_mock(
        &mut self,
        name: &str,
        handle: &MockHandle,
        parts: MockParts,
    ) -> Result<(), StepError> {
        let http = &self.runner.http;
        let mut cleared = Vec::new();
        let refused = |what: &str, e: MockAdminError| {
            StepError::from(format!("mock `{name}`: failed to clear its {what}: {e}"))
        };
        if parts.faults {
            handle
                .clear_faults(http)
                .await
                .map_err(|e| refused("faults", e))?;
            cleared.push("faults");
        }
        if parts.journal {
            handle
                .clear_journal(http)
                .await
                .map_err(|e| refused("journal", e))?;
            cleared.push("journal");
        }
        if parts.expectations {
            handle
                .clear_expectations(http)
                .await
                .map_err(|e| refused("expectations", e))?;
            cleared.push("expectations");
        }
        self.observe(self.fault_message("harness", name, &format!("clear {}", cleared.join(", "))));
        Ok(())
    }

    /// The request filter of a `mock` step, with the run's values filled in.
    fn call_filter(&self, request: &MockRequest) -> Result<CallFilter, StepError> {
        Ok(CallFilter {
            method: request.method.clone(),
            path: request
                .path
                .as_ref()
                .map(|p| self.values.text(p))
                .transpose()?,
            json: request
                .json
                .as_ref()
                .map(|j| self.values.json(j))
                .transpose()?,
        })
    }

    async fn add_fault(
        &mut self,
        mock: &str,
        handle: &MockHandle,
        mut fault: Fault,
        method: Option<&str>,
        path: Option<&str>,
    ) -> Result<(), StepError> {
        if let Some(m) = method {
            fault = fault.on_method(m);
        }
        if let Some(p) = path {
            fault = fault.on_path(self.values.text(p)?);
        }
        self.cleanup.faulted_mocks.insert(mock.to_owned());
        let label = format!("fault {}", fault.kind.name());
        self.observe(self.fault_message("harness", mock, &label));
        match handle.add_fault(&self.runner.http, &fault).await {
            Ok(()) => Ok(()),
            Err(MockAdminError::Unreachable(cause)) => {
                Err(format!("mock `{mock}`'s admin API: {cause}").into())
            }
            Err(MockAdminError::Refused { status, body }) => Err(StepError {
                message: format!("mock `{mock}` refused the fault ({status}): {body}"),
                request: Some(format!(
                    "POST {}/faults\n\n{}",
                    handle.admin_url,
                    serde_json::to_string_pretty(&FaultSpec::from(&fault)).unwrap_or_default()
                )),
                ..StepError::default()
            }),
        }
    }

    pub(super) async fn chaos(&mut self, step: &ChaosStep) -> Result<(), StepError> {
        let started = Instant::now();
        let (name, label) = match step {
            ChaosStep::Kill { component } => (component, "kill"),
            ChaosStep::Pause { component, .. } => (component, "pause"),
            ChaosStep::Restart { component } => (component, "restart"),
            ChaosStep::Toxic { .. } | ChaosStep::Heal { .. } => {
                let result = self.toxic(step).await;
                self.service += started.elapsed();
                return result;
            }
        };
        let component = self.component(name)?;
        self.involved.insert(name.clone());
        self.observe(self.fault_message("harness", name, label));
        let result = match step {
            ChaosStep::Kill { .. } => {
                self.cleanup.killed.insert(name.clone());
                component.kill().await
            }
            ChaosStep::Pause { duration, .. } => {
                self.cleanup.paused.insert(name.clone());
                let paused = component.pause().await;
                match (paused, duration) {
                    (Ok(()), Some(d)) => {
                        tokio::time::sleep(*d).await;
                        let resumed = component.resume().await;
                        if resumed.is_ok() {
                            self.cleanup.paused.remove(name);
                        }
                        resumed
                    }
                    (other, _) => other,
                }
            }
            ChaosStep::Restart { .. } => {
                let restarted = component.restart().await;
                if restarted.is_ok() {
                    self.cleanup.killed.remove(name);
                    self.cleanup.paused.remove(name);
                }
                restarted.map(|_| ())
            }
            ChaosStep::Toxic { .. } | ChaosStep::Heal { .. } => Ok(()),
        };
        self.service += started.elapsed();
        result.map_err(|e| {
            StepError::from(format!("{label} `{name}`: {}", crate::env::error_chain(&e)))
        })
    }
}

/// How often `mock: expect-none` reads the journal within its period.
const NONE_POLL: Duration = Duration::from_millis(50);

/// Which calls a `mock` step is about: the method, the exact path, and a
/// JSON body containing `json`.
struct CallFilter {
    method: Option<String>,
    path: Option<String>,
    json: Option<Value>,
}

impl CallFilter {
    fn matches(&self, c: &Call) -> bool {
        self.method.as_ref().is_none_or(|m| c.method == *m)
            && self.path.as_ref().is_none_or(|p| c.path == *p)
            && self.json.as_ref().is_none_or(|j| {
                c.json
                    .as_ref()
                    .is_some_and(|b| check::subset(j, b).is_none())
            })
    }
}

/// Calls, one a line, for a failure report.
fn shown<'c>(calls: impl Iterator<Item = &'c Call>) -> String {
    let lines: Vec<String> = calls
        .map(|c| {
            format!(
                "{} {} from {} → {}{}",
                c.method,
                c.path,
                c.caller,
                c.status.map_or("-".into(), |s| s.to_string()),
                c.fault
                    .as_ref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if lines.is_empty() {
        "(none)".to_owned()
    } else {
        lines.join("\n")
    }
}

impl Run<'_> {
    /// A toxic on a link (or healing one): through the ecosystem's fault
    /// proxies, which exist under the process runtime.
    async fn toxic(&mut self, step: &ChaosStep) -> Result<(), StepError> {
        let (link, toxic) = match step {
            ChaosStep::Toxic { link, .. } => (link, Some(step)),
            ChaosStep::Heal { link } => (link, None),
            _ => return Ok(()),
        };
        let link = self.values.text(link)?;
        let proxy = self
            .runner
            .eco
            .link_named(&link)
            .map_err(|e| StepError::from(crate::env::error_chain(&e)))?;
        self.cleanup.links = true;
        let parts = link
            .split_once("->")
            .map(|(a, b)| (a.to_owned(), b.to_owned()));
        let (from, to) = parts.unwrap_or_else(|| (link.clone(), link.clone()));
        self.involved.insert(from.clone());
        self.involved.insert(to.clone());
        let Some(ChaosStep::Toxic {
            toxic,
            upstream,
            toxicity,
            duration,
            ..
        }) = toxic
        else {
            self.observe(self.fault_message(&from, &to, "heal"));
            proxy.reset().map_err(|e| StepError::from(e.to_string()))?;
            return proxy.enable().map_err(|e| StepError::from(e.to_string()));
        };
        self.observe(self.fault_message(&from, &to, &format!("{toxic:?}")));
        let name = self.correlation_id();
        let undo: Box<dyn Fn() -> Result<(), crate::chaos::ChaosError> + Send + Sync> =
            match proxy_toxic(toxic) {
                None => {
                    proxy
                        .disable()
                        .map_err(|e| StepError::from(e.to_string()))?;
                    Box::new(|| proxy.enable())
                }
                Some(mut t) => {
                    t = t.named(name.clone());
                    if *upstream {
                        t = t.upstream();
                    }
                    if let Some(x) = toxicity {
                        t = t.toxicity(*x);
                    }
                    proxy.add(t).map_err(|e| StepError::from(e.to_string()))?;
                    let name = name.clone();
                    Box::new(move || proxy.remove(&name))
                }
            };
        if let Some(d) = duration {
            tokio::time::sleep(*d).await;
            undo().map_err(|e| StepError::from(e.to_string()))?;
        }
        Ok(())
    }

    /// A fault the harness caused, for the sequence diagram.
    fn fault_message(&self, from: &str, to: &str, label: &str) -> Message {
        Message {
            at_ms: self.clock.now_ms(),
            from: from.to_owned(),
            to: to.to_owned(),
            kind: MessageKind::Fault,
            label: label.to_owned(),
            correlation_id: None,
        }
    }
}

/// The fault proxy's form of a scenario's toxic; `None` for `down`, which
/// disables the proxy instead.
fn proxy_toxic(toxic: &Toxic) -> Option<crate::chaos::Toxic> {
    use crate::chaos::Toxic as T;
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Some(match toxic {
        Toxic::Latency { latency, jitter } => T::latency(*latency, *jitter),
        Toxic::Bandwidth { rate } => T::bandwidth(*rate),
        Toxic::SlowClose { delay } => T::slow_close(*delay),
        Toxic::Timeout { timeout } => T::timeout(*timeout),
        Toxic::ResetPeer { timeout } => T::reset_peer(*timeout),
        Toxic::Slicer {
            average,
            variation,
            delay,
        } => T::slicer(size(*average), size(*variation), *delay),
        Toxic::LimitData { bytes } => T::limit_data(*bytes),
        Toxic::Down => return None,
    })
}
