//! [`StepCx`]: what a step kind's `run` may use of its scenario's run, and
//! what it records there.
//!
//! A kind gets the run's values and connections to read and change, and
//! reports through the context what the run accounts for: the time it
//! spent waiting on the system (the report's service time, which the
//! engine-overhead benchmark subtracts), the components it involved (whose
//! logs a failure shows), the sequence diagram's messages, a short note
//! for its label, and what to put back at the end (`cleanup`). It never
//! sees the rest of the run: failures are its `Err`, the runner records them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::interp::Values;
use super::ws::{Conn, Observer};
use super::{Cleanup, Clock, Run, Runner, StepError};
use crate::env::{ComponentHandle, Ecosystem};
use crate::platform::Platform;
use crate::report::{Message, MessageKind};
use crate::trace::TracePrefix;

/// The context one step runs against (see the module docs).
pub(crate) struct StepCx<'a, 'r> {
    runner: &'r Runner,
    /// `${...}` values: saved values, the run's tenants, the ecosystem's.
    pub(crate) values: &'a mut Values,
    /// The run's open WebSocket connections, by name.
    pub(crate) conns: &'a mut BTreeMap<String, Conn>,
    /// A short result appended to the step's label (`→ 201`).
    pub(crate) note: &'a mut Option<String>,
    /// What the run puts back at its end, whatever happened.
    pub(crate) cleanup: &'a mut Cleanup,
    /// Attempts the step took (`eventually` sets it; 1 otherwise).
    pub(crate) attempts: u32,
    /// Offsets of observations from the run's start.
    pub(crate) clock: Clock,
    service: &'a mut Duration,
    involved: &'a mut std::collections::BTreeSet<String>,
    requests: &'a mut usize,
    prefix: &'a str,
    trace: &'a TracePrefix,
    messages: &'a Arc<Mutex<Vec<Message>>>,
    changed: &'a Arc<Notify>,
}

impl<'r> Run<'r> {
    /// The context for the step about to run.
    pub(super) fn step_cx(&mut self) -> StepCx<'_, 'r> {
        StepCx {
            runner: self.runner,
            values: &mut self.values,
            conns: &mut self.conns,
            note: &mut self.note,
            cleanup: &mut self.cleanup,
            attempts: 1,
            clock: self.clock,
            service: &mut self.service,
            involved: &mut self.involved,
            requests: &mut self.requests,
            prefix: &self.prefix,
            trace: &self.trace,
            messages: &self.messages,
            changed: &self.changed,
        }
    }
}

impl<'r> StepCx<'_, 'r> {
    /// Time spent waiting on the system under test: HTTP round trips,
    /// queries, waits for events. The rest of a step is the engine's.
    pub(crate) fn waited(&mut self, d: Duration) {
        *self.service += d;
    }

    /// Runs `f` and counts its time as waiting on the system.
    pub(crate) async fn waiting<T>(&mut self, f: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let out = f.await;
        self.waited(started.elapsed());
        out
    }

    /// A component the step talked to: a failure shows its log.
    pub(crate) fn involve(&mut self, component: &str) {
        if !self.involved.contains(component) {
            self.involved.insert(component.to_owned());
        }
    }

    /// Adds a message to the sequence diagram.
    pub(crate) fn observe(&self, message: Message) {
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
    }

    /// Adds a fault the harness caused (`from` → `to`) to the sequence diagram.
    pub(crate) fn observe_fault(&self, from: &str, to: &str, label: &str) {
        self.observe(Message {
            at_ms: self.clock.now_ms(),
            from: from.to_owned(),
            to: to.to_owned(),
            kind: MessageKind::Fault,
            label: label.to_owned(),
            correlation_id: None,
        });
    }

    /// What the WebSocket reader of connection `name` reports to.
    pub(crate) fn observer(&self, name: &str) -> Observer {
        Observer {
            name: name.to_owned(),
            messages: Arc::clone(self.messages),
            changed: Arc::clone(self.changed),
            clock: self.clock,
        }
    }

    /// Notified when something the run can observe happened (a bus event
    /// of its tenants, a WebSocket frame): `eventually` waits on it.
    pub(crate) fn changed(&self) -> Arc<Notify> {
        Arc::clone(self.changed)
    }

    /// A new correlation id for a request of this run.
    pub(crate) fn correlation_id(&mut self) -> String {
        *self.requests += 1;
        format!("{}-{}", self.prefix, self.requests)
    }

    /// The `traceparent` of the request whose correlation id was made
    /// last: a new trace of the run's (see [`crate::trace`]).
    pub(crate) fn traceparent(&self) -> String {
        self.trace.traceparent(*self.requests as u64)
    }

    /// The `traceparent` of a new trace of the run's, for a request that
    /// carries no correlation id (a WebSocket handshake).
    pub(crate) fn new_trace(&mut self) -> String {
        *self.requests += 1;
        self.trace.traceparent(*self.requests as u64)
    }

    /// The run's spans that have arrived so far, ordered by start.
    pub(crate) fn spans(&self) -> Vec<crate::trace::Span> {
        self.eco().traces().of_run(self.trace)
    }

    /// The prefix of every correlation id the run sends (how the run finds
    /// its own calls in a mock's journal).
    pub(crate) fn prefix(&self) -> &str {
        self.prefix
    }

    pub(crate) fn runner(&self) -> &'r Runner {
        self.runner
    }

    pub(crate) fn eco(&self) -> &'r Ecosystem {
        &self.runner.eco
    }

    /// The runner's HTTP client (the ecosystem's TLS trust, a per-request
    /// deadline).
    pub(crate) fn client(&self) -> &'r reqwest::Client {
        &self.runner.http
    }

    pub(crate) fn platform(&self) -> &'r Platform {
        &self.runner.platform
    }

    /// The base URL of a component, or an error naming those that have one.
    pub(crate) fn url_of(&self, name: &str) -> Result<String, StepError> {
        let urls = &self.runner.components;
        urls.get(name).cloned().ok_or_else(|| {
            StepError::from(format!(
                "no component `{name}` with a URL in the ecosystem (it has {})",
                urls.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// A component's handle, or an error naming the known ones.
    pub(crate) fn component(&self, name: &str) -> Result<&'r ComponentHandle, StepError> {
        let eco = &self.runner.eco;
        eco.component(name).map_err(|_| {
            StepError::from(format!(
                "no component `{name}` in the ecosystem (it has {})",
                eco.components()
                    .map(|c| c.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    pub(crate) fn pg(&self) -> Result<&'r sqlx::PgPool, StepError> {
        self.runner
            .pg
            .as_ref()
            .map_err(|e| StepError::from(format!("no Postgres to query: {e}")))
    }

    /// A Redis connection (multiplexed: cloning is cheap).
    pub(crate) fn redis(&self) -> Result<redis::aio::MultiplexedConnection, StepError> {
        self.runner
            .redis
            .as_ref()
            .cloned()
            .map_err(|e| StepError::from(format!("no Redis to look into: {e}")))
    }

    /// The same context for an inner step (`eventually`'s).
    pub(crate) fn reborrow(&mut self) -> StepCx<'_, 'r> {
        StepCx {
            runner: self.runner,
            values: self.values,
            conns: self.conns,
            note: self.note,
            cleanup: self.cleanup,
            attempts: 1,
            clock: self.clock,
            service: self.service,
            involved: self.involved,
            requests: self.requests,
            prefix: self.prefix,
            trace: self.trace,
            messages: self.messages,
            changed: self.changed,
        }
    }
}
