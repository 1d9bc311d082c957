//! The steps that look into or act on the ecosystem's parts beside HTTP:
//! `sql`, `redis`, `mock` and `chaos`.

use std::collections::BTreeSet;
use std::time::Instant;

use redis::AsyncCommands as _;
use serde_json::{json, Value};

use super::sql::SqlError;
use super::{check, Run, StepError};
use crate::env::{MockAdminError, MockHandle};
use crate::report::{Message, MessageKind};
use crate::scenario::model::{ChaosStep, MockFault, MockStep, RedisStep, SqlAs, SqlStep, Toxic};

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
        let name = match step {
            MockStep::Expect { mock, .. }
            | MockStep::Set { mock, .. }
            | MockStep::Fault { mock, .. } => mock,
        };
        let handle = self
            .runner
            .eco
            .mock(name)
            .map_err(|e| StepError::from(crate::env::error_chain(&e)))?;
        let admin = handle.admin_url.clone();
        self.involved.insert(name.clone());
        let started = Instant::now();
        let result = match step {
            MockStep::Expect { request, times, .. } => {
                let json = request
                    .json
                    .as_ref()
                    .map(|j| self.values.json(j))
                    .transpose()?;
                let path = request
                    .path
                    .as_ref()
                    .map(|p| self.values.text(p))
                    .transpose()?;
                let calls = super::observe::journal(self.runner, &admin, &self.prefix).await?;
                let matching: Vec<&super::observe::Call> = calls
                    .iter()
                    .filter(|c| {
                        request.method.as_ref().is_none_or(|m| c.method == *m)
                            && path.as_ref().is_none_or(|p| c.path == *p)
                            && json.as_ref().is_none_or(|j| {
                                c.json
                                    .as_ref()
                                    .is_some_and(|b| check::subset(j, b).is_none())
                            })
                    })
                    .collect();
                self.note = Some(format!("{} call(s)", matching.len()));
                let ok = match times {
                    Some(t) => matching.len() == *t as usize,
                    None => !matching.is_empty(),
                };
                if ok {
                    Ok(())
                } else {
                    let seen: Vec<String> = calls
                        .iter()
                        .map(|c| {
                            format!(
                                "{} {} from {} → {}",
                                c.method,
                                c.path,
                                c.caller,
                                c.status.map_or("-".into(), |s| s.to_string())
                            )
                        })
                        .collect();
                    Err(StepError {
                        message: format!(
                            "mock `{name}` received {} matching call(s) from this scenario, expected {}",
                            matching.len(),
                            times.map_or("at least 1".to_owned(), |t| t.to_string())
                        ),
                        response: Some(format!(
                            "calls of this scenario to `{name}`:\n{}",
                            if seen.is_empty() { "(none)".to_owned() } else { seen.join("\n") }
                        )),
                        ..StepError::default()
                    })
                }
            }
            MockStep::Set {
                request, respond, ..
            } => {
                let mut spec = json!({ "kind": "status", "status": respond.status.unwrap_or(200) });
                if let Some(body) = &respond.json {
                    spec["body"] = self.values.json(body)?;
                }
                self.add_fault(
                    name,
                    &handle,
                    spec,
                    request.method.as_deref(),
                    request.path.as_deref(),
                    None,
                    None,
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
                let spec = match fault {
                    MockFault::Latency(d) => json!({ "kind": "latency", "delay": millis(*d) }),
                    MockFault::Status(s) => json!({ "kind": "status", "status": s }),
                    MockFault::RateLimit { retry_after } => {
                        json!({ "kind": "rate-limit", "retry-after": millis(*retry_after) })
                    }
                    MockFault::Reset => json!({ "kind": "reset" }),
                    MockFault::Malformed => json!({ "kind": "malformed" }),
                };
                self.add_fault(
                    name,
                    &handle,
                    spec,
                    method.as_deref(),
                    path.as_deref(),
                    *times,
                    *ratio,
                )
                .await
            }
        };
        self.service += started.elapsed();
        result
    }

    #[expect(clippy::too_many_arguments, reason = "one fault's scope, spelled out")]
    async fn add_fault(
        &mut self,
        mock: &str,
        handle: &MockHandle,
        mut spec: Value,
        method: Option<&str>,
        path: Option<&str>,
        times: Option<u32>,
        ratio: Option<f64>,
    ) -> Result<(), StepError> {
        if let Some(m) = method {
            spec["method"] = json!(m);
        }
        if let Some(p) = path {
            spec["path"] = json!(self.values.text(p)?);
        }
        if let Some(t) = times {
            spec["times"] = json!(t);
        }
        if let Some(r) = ratio {
            spec["ratio"] = json!(r);
        }
        self.cleanup.faulted_mocks.insert(mock.to_owned());
        let label = format!("fault {}", spec["kind"].as_str().unwrap_or_default());
        self.observe(self.fault_message("harness", mock, &label));
        match handle.add_fault(&self.runner.http, &spec).await {
            Ok(()) => Ok(()),
            Err(MockAdminError::Unreachable(cause)) => {
                Err(format!("mock `{mock}`'s admin API: {cause}").into())
            }
            Err(MockAdminError::Refused { status, body }) => Err(StepError {
                message: format!("mock `{mock}` refused the fault ({status}): {body}"),
                request: Some(format!("POST {}/faults\n\n{spec}", handle.admin_url)),
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

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
