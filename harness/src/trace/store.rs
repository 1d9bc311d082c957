//! The spans received so far, and how a run finds its own.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokio::sync::Notify;

/// One finished span, as a service exported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits.
    pub span_id: String,
    /// The parent's span id; `None` for a trace's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// The resource's `service.name` (`flow-api`); `unknown` when absent.
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Attribute values as JSON: strings, booleans, numbers, arrays.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Json>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SpanEvent>,
    #[serde(default)]
    pub status: SpanStatus,
}

impl Span {
    /// How long the span lasted, in nanoseconds (0 for a span whose end
    /// precedes its start).
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    /// An attribute's value as text (strings as they are, other values as
    /// JSON), or `None` when the span lacks it.
    pub fn attribute_text(&self, key: &str) -> Option<String> {
        self.attributes.get(key).map(|v| match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// The span's `tekup.operation`, the contract's name of what it did.
    pub fn operation(&self) -> Option<&str> {
        self.attributes
            .get("tekup.operation")
            .and_then(Json::as_str)
    }
}

/// A timed event inside a span (`retry`, `dead_letter`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanEvent {
    pub name: String,
    pub time_unix_nano: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Json>,
}

/// OTLP's span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// The kind of OTLP's numeric `SpanKind` (unknown numbers: unspecified).
    pub fn from_otlp(n: i32) -> Self {
        match n {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// OTLP's number for this kind.
    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unspecified => 0,
            Self::Internal => 1,
            Self::Server => 2,
            Self::Client => 3,
            Self::Producer => 4,
            Self::Consumer => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span's status: unset, ok, or error with a message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SpanStatus {
    pub code: StatusCode,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// OTLP's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    /// The code of OTLP's numeric status (unknown numbers: unset).
    pub fn from_otlp(n: i32) -> Self {
        match n {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }

    /// OTLP's number for this code.
    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unset => 0,
            Self::Ok => 1,
            Self::Error => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "unset",
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// The first 16 hex digits of every trace id a run starts: its spans are
/// those whose trace id begins with them. Random per run, so runs sharing
/// an ecosystem never see each other's spans.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TracePrefix(String);

impl TracePrefix {
    pub fn random() -> Self {
        let n: u64 = rand::thread_rng().gen_range(1..=u64::MAX);
        Self(format!("{n:016x}"))
    }

    /// The `traceparent` of a new trace of this run: trace id = prefix +
    /// `seq`, parent span id = `seq` too (the harness's request, a span
    /// that is never exported: [`harness_span`] recognises it), sampled.
    pub fn traceparent(&self, seq: u64) -> String {
        let seq = seq.max(1);
        format!("00-{}-{seq:016x}-01", self.trace_id(seq))
    }

    /// The trace id of the run's `seq`-th trace.
    pub fn trace_id(&self, seq: u64) -> String {
        format!("{}{seq:016x}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a trace id belongs to this run.
    pub fn owns(&self, trace_id: &str) -> bool {
        trace_id.len() == 32 && trace_id.starts_with(&self.0)
    }
}

/// Whether `parent` is the span id the harness put in the `traceparent`
/// that began trace `trace_id` ([`TracePrefix::traceparent`]): a span whose
/// parent it is began with one of the harness's requests.
pub fn harness_span(trace_id: &str, parent: &str) -> bool {
    trace_id.len() == 32 && parent.len() == 16 && trace_id[16..] == *parent
}

/// Every span the receiver took, indexed by trace, with a notification
/// for those waiting on new ones.
#[derive(Debug, Default)]
pub struct SpanStore {
    traces: Mutex<HashMap<String, Vec<Span>>>,
    changed: Arc<Notify>,
    received: AtomicU64,
}

impl SpanStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds spans and wakes whoever waits on [`SpanStore::changed`].
    pub fn insert(&self, spans: impl IntoIterator<Item = Span>) {
        let mut n = 0;
        {
            let mut traces = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
            for span in spans {
                traces.entry(span.trace_id.clone()).or_default().push(span);
                n += 1;
            }
        }
        if n > 0 {
            self.received.fetch_add(n, Ordering::Relaxed);
            self.changed.notify_waiters();
        }
    }

    /// The run's spans (its trace ids begin with `prefix`), ordered by
    /// start time.
    pub fn of_run(&self, prefix: &TracePrefix) -> Vec<Span> {
        let traces = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
        let mut spans: Vec<Span> = traces
            .iter()
            .filter(|(id, _)| prefix.owns(id))
            .flat_map(|(_, spans)| spans.iter().cloned())
            .collect();
        sort_by_start(&mut spans);
        spans
    }

    /// One trace's spans, ordered by start time.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        let traces = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
        let mut spans = traces.get(trace_id).cloned().unwrap_or_default();
        sort_by_start(&mut spans);
        spans
    }

    /// The spans (of any trace) `keep` keeps, in no particular order.
    pub fn matching(&self, keep: impl Fn(&Span) -> bool) -> Vec<Span> {
        let traces = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
        traces
            .values()
            .flatten()
            .filter(|s| keep(s))
            .cloned()
            .collect()
    }

    /// Every span received, ordered by start time.
    pub fn all(&self) -> Vec<Span> {
        let traces = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
        let mut spans: Vec<Span> = traces.values().flatten().cloned().collect();
        sort_by_start(&mut spans);
        spans
    }

    /// How many spans arrived since the store was made.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Notified (`notify_waiters`) whenever spans arrive. Register with
    /// `Notified::enable` before reading the store, or a wake-up between
    /// the read and the wait is lost.
    pub fn changed(&self) -> Arc<Notify> {
        Arc::clone(&self.changed)
    }
}

fn sort_by_start(spans: &mut [Span]) {
    spans.sort_by(|a, b| {
        (a.start_unix_nano, &a.trace_id, &a.span_id).cmp(&(
            b.start_unix_nano,
            &b.trace_id,
            &b.span_id,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace_id: &str, span_id: &str, start: u64) -> Span {
        Span {
            trace_id: trace_id.into(),
            span_id: span_id.into(),
            parent_span_id: None,
            service: "flow-api".into(),
            name: "POST /leads".into(),
            kind: SpanKind::Server,
            start_unix_nano: start,
            end_unix_nano: start + 10,
            attributes: BTreeMap::new(),
            events: Vec::new(),
            status: SpanStatus::default(),
        }
    }

    #[test]
    fn a_run_sees_its_own_traces_and_no_other() {
        let store = SpanStore::new();
        let mine = TracePrefix::random();
        let theirs = TracePrefix::random();
        store.insert([
            span(&mine.trace_id(2), "b", 20),
            span(&theirs.trace_id(1), "c", 5),
            span(&mine.trace_id(1), "a", 10),
            span(&"f".repeat(32), "d", 1),
        ]);
        let seen: Vec<String> = store.of_run(&mine).into_iter().map(|s| s.span_id).collect();
        assert_eq!(seen, ["a", "b"]);
        assert_eq!(store.of_run(&theirs).len(), 1);
        assert_eq!(store.received(), 4);
        assert_eq!(store.all().len(), 4);
    }

    #[test]
    fn traceparents_carry_the_prefix_and_are_valid() {
        let prefix = TracePrefix::random();
        let tp = prefix.traceparent(7);
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32);
        assert!(prefix.owns(parts[1]), "{tp}");
        assert!(parts[1].ends_with("0000000000000007"), "{tp}");
        assert_eq!(parts[2], "0000000000000007");
        assert!(harness_span(parts[1], parts[2]));
        assert!(!harness_span(parts[1], "0000000000000008"));
        assert_eq!(parts[3], "01");
    }

    #[tokio::test]
    async fn inserting_wakes_a_waiter() {
        let store = SpanStore::new();
        let changed = store.changed();
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        store.insert([span(&"a".repeat(32), "a", 1)]);
        // Woken already: this completes at once.
        notified.await;
    }
}
