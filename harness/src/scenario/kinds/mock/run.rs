//! Running a `mock` step through the mock's admin API: the run's own calls
//! in its journal (found by the run's correlation-id prefix), canned
//! answers and faults scoped to the run's calls by the same prefix (taken
//! back at the run's end, the run's own only), clearing.

use std::time::{Duration, Instant};

use serde_json::Value;
use tekup_mocks::{Fault, FaultSpec};

use super::{MockAnswer, MockFault, MockParts, MockRequest, MockStep};
use crate::env::{MockAdminError, MockHandle};
use crate::scenario::kinds::{StepCx, StepError};
use crate::scenario::run::{check, observe, Call, Values};

pub(super) async fn run(cx: &mut StepCx<'_, '_>, step: &MockStep) -> Result<(), StepError> {
    let name = step.mock().to_owned();
    let handle = cx
        .eco()
        .mock(&name)
        .map_err(|e| StepError::from(crate::env::error_chain(&e)))?;
    cx.involve(&name.clone());
    let started = Instant::now();
    let result = match step {
        MockStep::Expect {
            request,
            answered,
            times,
            ..
        } => expect_calls(cx, &name, &handle, request, answered, *times).await,
        MockStep::ExpectNone {
            request, period, ..
        } => expect_none(cx, &name, &handle, request, *period).await,
        MockStep::Set {
            request, respond, ..
        } => {
            let mut fault = Fault::status(respond.status.unwrap_or(200));
            if let Some(body) = &respond.json {
                fault = fault.with_body(cx.values.json(body)?);
            }
            add_fault(
                cx,
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
                    Some(body) => Fault::status(*status).with_body(cx.values.json(body)?),
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
            add_fault(
                cx,
                &name,
                &handle,
                fault,
                method.as_deref(),
                path.as_deref(),
            )
            .await
        }
        MockStep::Clear { parts, .. } => clear_mock(cx, &name, &handle, *parts).await,
    };
    cx.waited(started.elapsed());
    result
}

/// `mock: expect`: the run's calls in the journal, counted.
async fn expect_calls(
    cx: &mut StepCx<'_, '_>,
    name: &str,
    handle: &MockHandle,
    request: &MockRequest,
    answered: &MockAnswer,
    times: Option<u32>,
) -> Result<(), StepError> {
    let filter = call_filter(cx.values, request)?;
    let calls = observe::journal(cx.runner(), &handle.admin_url, cx.prefix()).await?;
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
    *cx.note = Some(format!("{} call(s)", matching.len()));
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
    cx: &mut StepCx<'_, '_>,
    name: &str,
    handle: &MockHandle,
    request: &MockRequest,
    period: Duration,
) -> Result<(), StepError> {
    let filter = call_filter(cx.values, request)?;
    let started = Instant::now();
    let deadline = started + period;
    let http = cx.client();
    let prefix = cx.prefix().to_owned();
    let read = || {
        let prefix = prefix.clone();
        let method = filter.method.clone();
        let path = filter.path.clone();
        async move {
            handle
                .journal(http, method.as_deref(), path.as_deref())
                .await
                .map(|entries| observe::calls_of_run(entries, &prefix))
                .map_err(|e| StepError::from(format!("mock `{name}`: {e}")))
        }
    };
    let baseline = read().await?.iter().map(|c| c.seq).max().unwrap_or(0);
    let mut reads = 1;
    loop {
        let read_at = Instant::now();
        let calls = read().await?;
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
            *cx.note = Some(format!("none in {period:?} ({reads} reads)"));
            return Ok(());
        }
        let next = (Instant::now() + NONE_POLL).min(deadline);
        tokio::time::sleep_until(next.into()).await;
    }
}

/// `mock: clear`: empties the journal, faults and expectations (or the
/// ones `only` names) through the admin API.
async fn clear_mock(
    cx: &mut StepCx<'_, '_>,
    name: &str,
    handle: &MockHandle,
    parts: MockParts,
) -> Result<(), StepError> {
    let http = cx.client();
    let mut cleared = Vec::new();
    let refused = |what: &str, e: MockAdminError| {
        StepError::from(format!("mock `{name}`: failed to clear its {what}: {e}"))
    };
    if parts.faults {
        handle
            .clear_scoped_faults(http, &run_scope(cx.prefix()))
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
    cx.observe_fault("harness", name, &format!("clear {}", cleared.join(", ")));
    Ok(())
}

/// The request filter of a `mock` step, with the run's values filled in.
fn call_filter(values: &Values, request: &MockRequest) -> Result<CallFilter, StepError> {
    Ok(CallFilter {
        method: request.method.clone(),
        path: request.path.as_ref().map(|p| values.text(p)).transpose()?,
        json: request.json.as_ref().map(|j| values.json(j)).transpose()?,
    })
}

async fn add_fault(
    cx: &mut StepCx<'_, '_>,
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
        fault = fault.on_path(cx.values.text(p)?);
    }
    fault.header = Some(run_scope(cx.prefix()));
    cx.cleanup.faulted_mocks.insert(mock.to_owned());
    let label = format!("fault {}", fault.kind.name());
    cx.observe_fault("harness", mock, &label);
    match handle.add_fault(cx.client(), &fault).await {
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

/// The calls of the run whose correlation ids start with `prefix`: the
/// scope of its faults and canned answers, so that runs beside it are
/// answered normally, and what its clean-up removes.
pub(crate) fn run_scope(prefix: &str) -> tekup_mocks::HeaderScope {
    tekup_mocks::HeaderScope::new(
        &crate::contract::active().headers.correlation_id,
        format!("{prefix}-"),
    )
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
