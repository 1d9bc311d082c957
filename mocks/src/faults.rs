//! Fault injection: what a mock does instead of (or before) answering.
//!
//! A [`Fault`] is a [`FaultKind`] plus a scope: which calls it hits (method,
//! path prefix, a header's prefix), how many (`times`) and how often
//! (`ratio`). Faults are kept in order; the first one in scope for a call is
//! applied to it.
//!
//! The header scope is what lets test runs share a mock: a run that sends
//! every request with a correlation id of its own (`x-correlation-id:
//! run-7f3a-…`, which the services pass on to the external APIs they call)
//! scopes its faults to that prefix, and the calls of runs beside it are
//! answered normally. Such a run removes only its own faults at its end
//! (`DELETE /__admin/faults?header=…&prefix=…`). Faults that
//! live below HTTP (a reset connection, a truncated body) are carried out by
//! the server layer in [`crate::server`], which owns the sockets.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::error::MockError;

/// What happens to a call hit by a fault. Serialized as the admin API lists
/// it (`GET /__admin/faults`), durations as `"250ms"`; it reads back the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    /// Answer normally, but only after `delay`.
    Latency {
        /// How long to wait before handling the call.
        #[serde(with = "duration_ms")]
        delay: Duration,
    },
    /// Answer with `status`; the body is `body` or else the API's own error
    /// shape for that status.
    Status {
        /// HTTP status code.
        status: u16,
        /// Response body; `None` uses the API's error shape.
        body: Option<serde_json::Value>,
    },
    /// Answer `429` in the API's error shape with a `Retry-After` header.
    RateLimit {
        /// Value of `Retry-After` (whole seconds, rounded up).
        #[serde(with = "duration_ms")]
        retry_after: Duration,
    },
    /// Answer with the real status and headers, but a body cut in half and
    /// followed by garbage, so it does not parse.
    Malformed,
    /// Announce the full body, send half of it, then close the connection.
    Truncated,
    /// Reset the TCP connection (RST) without answering.
    Reset,
    /// Send nothing for `duration` (or until the mock shuts down).
    Stall {
        /// How long to stall; `None` is forever.
        #[serde(with = "opt_duration_ms", default)]
        duration: Option<Duration>,
    },
}

impl FaultKind {
    /// Short name, as recorded in the journal.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Latency { .. } => "latency",
            Self::Status { .. } => "status",
            Self::RateLimit { .. } => "rate-limit",
            Self::Malformed => "malformed",
            Self::Truncated => "truncated",
            Self::Reset => "reset",
            Self::Stall { .. } => "stall",
        }
    }
}

/// A fault with its scope. Built as a sentence:
/// `Fault::status(503).on_path("/v1/chat").times(2)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// What the fault does.
    pub kind: FaultKind,
    /// Only calls with this method (upper case); `None` is any.
    pub method: Option<String>,
    /// Only calls whose path starts with this; `None` is any.
    pub path: Option<String>,
    /// Only calls with this header starting with a prefix; `None` is any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderScope>,
    /// Calls left to hit; `None` is unlimited.
    pub remaining: Option<u32>,
    /// Fraction of in-scope calls hit, in `0.0..=1.0`.
    pub ratio: f64,
}

impl Fault {
    fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            method: None,
            path: None,
            header: None,
            remaining: None,
            ratio: 1.0,
        }
    }

    /// Delay each hit call by `delay`, then answer normally.
    #[must_use]
    pub fn latency(delay: Duration) -> Self {
        Self::new(FaultKind::Latency { delay })
    }

    /// Answer with `status` in the API's error shape.
    #[must_use]
    pub fn status(status: u16) -> Self {
        Self::new(FaultKind::Status { status, body: None })
    }

    /// Answer 429 with `Retry-After`.
    #[must_use]
    pub fn rate_limit(retry_after: Duration) -> Self {
        Self::new(FaultKind::RateLimit { retry_after })
    }

    /// Answer with a body that does not parse.
    #[must_use]
    pub fn malformed() -> Self {
        Self::new(FaultKind::Malformed)
    }

    /// Close the connection halfway through the body.
    #[must_use]
    pub fn truncated() -> Self {
        Self::new(FaultKind::Truncated)
    }

    /// Reset the connection.
    #[must_use]
    pub fn reset() -> Self {
        Self::new(FaultKind::Reset)
    }

    /// Answer nothing for `duration` (`None`: until shutdown).
    #[must_use]
    pub fn stall(duration: Option<Duration>) -> Self {
        Self::new(FaultKind::Stall { duration })
    }

    /// Use `body` instead of the API's error shape (status faults only).
    #[must_use]
    pub fn with_body(mut self, body: serde_json::Value) -> Self {
        if let FaultKind::Status { body: b, .. } = &mut self.kind {
            *b = Some(body);
        }
        self
    }

    /// Hit only calls whose path starts with `prefix`.
    #[must_use]
    pub fn on_path(mut self, prefix: impl Into<String>) -> Self {
        self.path = Some(prefix.into());
        self
    }

    /// Hit only calls whose header `name` starts with `prefix`: the calls of
    /// one test run, by the correlation id its requests carry.
    #[must_use]
    pub fn on_header(mut self, name: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.header = Some(HeaderScope::new(name, prefix));
        self
    }

    /// Hit only calls with this HTTP method.
    #[must_use]
    pub fn on_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into().to_ascii_uppercase());
        self
    }

    /// Hit the next `n` in-scope calls, then disappear.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Hit each in-scope call with probability `ratio` (clamped to 0..=1).
    #[must_use]
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio.clamp(0.0, 1.0);
        self
    }

    fn in_scope(&self, method: &str, path: &str, headers: &HeaderMap) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|p| path.starts_with(p))
            && self.header.as_ref().is_none_or(|h| h.matches(headers))
    }
}

/// A fault's header scope: calls whose header `name` (any case) has a value
/// starting with `prefix`. A call without the header is out of scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderScope {
    /// The header's name, lower case.
    pub name: String,
    /// What its value starts with.
    pub prefix: String,
}

impl HeaderScope {
    /// The scope of calls whose header `name` starts with `prefix`.
    #[must_use]
    pub fn new(name: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            name: name.into().to_ascii_lowercase(),
            prefix: prefix.into(),
        }
    }

    fn matches(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(self.name.as_str())
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.starts_with(&self.prefix)))
    }
}

/// The faults of one mock, in the order they were added.
#[derive(Debug, Default)]
pub struct FaultSet {
    faults: Mutex<Vec<Fault>>,
}

impl FaultSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a fault after the existing ones.
    pub fn push(&self, fault: Fault) {
        self.lock().push(fault);
    }

    /// The faults still active.
    #[must_use]
    pub fn list(&self) -> Vec<Fault> {
        self.lock().clone()
    }

    /// Removes all faults.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Removes the faults scoped to exactly `scope` (one run's faults),
    /// leaving the others; returns how many it removed.
    pub fn clear_scoped(&self, scope: &HeaderScope) -> usize {
        let mut faults = self.lock();
        let before = faults.len();
        faults.retain(|f| f.header.as_ref() != Some(scope));
        before - faults.len()
    }

    /// The fault to apply to a call, consuming one of its `times`.
    pub(crate) fn take(&self, method: &str, path: &str, headers: &HeaderMap) -> Option<FaultKind> {
        let mut faults = self.lock();
        let mut rng = rand::thread_rng();
        let index = faults.iter().position(|f| {
            f.in_scope(method, path, headers)
                && f.remaining != Some(0)
                && (f.ratio >= 1.0 || rng.gen_bool(f.ratio))
        })?;
        let fault = &mut faults[index];
        let kind = fault.kind.clone();
        if let Some(n) = &mut fault.remaining {
            *n -= 1;
            if *n == 0 {
                faults.remove(index);
            }
        }
        Some(kind)
    }
}

/// A fault as written in JSON for the admin API (`POST /__admin/faults`):
/// `{"kind": "status", "status": 503, "times": 2, "path": "/v1/chat"}`.
/// Durations are humantime strings (`"1s"`, `"250ms"`) or milliseconds.
///
/// A client builds one from a [`Fault`] (`FaultSpec::from(&fault)`) rather
/// than writing the JSON by hand; the admin API turns it back into the same
/// fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FaultSpec {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay: Option<DurationSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<DurationSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<DurationSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    times: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<HeaderScope>,
}

impl From<&Fault> for FaultSpec {
    fn from(fault: &Fault) -> Self {
        let ms = |d: &Duration| Some(DurationSpec::Millis(millis(*d)));
        let mut spec = FaultSpec {
            kind: fault.kind.name().to_owned(),
            status: None,
            body: None,
            delay: None,
            retry_after: None,
            duration: None,
            times: fault.remaining,
            ratio: (fault.ratio < 1.0).then_some(fault.ratio),
            path: fault.path.clone(),
            method: fault.method.clone(),
            header: fault.header.clone(),
        };
        match &fault.kind {
            FaultKind::Latency { delay } => spec.delay = ms(delay),
            FaultKind::Status { status, body } => {
                spec.status = Some(*status);
                spec.body.clone_from(body);
            }
            FaultKind::RateLimit { retry_after } => spec.retry_after = ms(retry_after),
            FaultKind::Stall { duration } => spec.duration = duration.as_ref().and_then(ms),
            FaultKind::Malformed | FaultKind::Truncated | FaultKind::Reset => {}
        }
        spec
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration: a humantime-like string or a number of milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum DurationSpec {
    Millis(u64),
    Text(String),
}

impl DurationSpec {
    fn get(&self, key: &str) -> Result<Duration, MockError> {
        match self {
            Self::Millis(ms) => Ok(Duration::from_millis(*ms)),
            Self::Text(text) => parse_duration(text).ok_or_else(|| {
                MockError::InvalidFault(format!(
                    "`{key}`: cannot parse duration `{text}` (use e.g. `250ms`, `2s`)"
                ))
            }),
        }
    }
}

impl FaultSpec {
    /// Checks the spec and turns it into a [`Fault`].
    pub fn into_fault(self) -> Result<Fault, MockError> {
        let need = |d: &Option<DurationSpec>, key: &str| -> Result<Duration, MockError> {
            d.as_ref()
                .ok_or_else(|| {
                    MockError::InvalidFault(format!("fault `{}` needs `{key}`", self.kind))
                })?
                .get(key)
        };
        let mut fault = match self.kind.as_str() {
            "latency" => Fault::latency(need(&self.delay, "delay")?),
            "status" => {
                let status = self.status.ok_or_else(|| MockError::InvalidFault("fault `status` needs `status`".into()))?;
                if !(100..=599).contains(&status) {
                    return Err(MockError::InvalidFault(format!("`status`: {status} is not an HTTP status")));
                }
                Fault::new(FaultKind::Status { status, body: self.body.clone() })
            }
            "rate-limit" => Fault::rate_limit(match &self.retry_after {
                Some(d) => d.get("retry-after")?,
                None => Duration::from_secs(1),
            }),
            "malformed" => Fault::malformed(),
            "truncated" => Fault::truncated(),
            "reset" => Fault::reset(),
            "stall" => Fault::stall(self.duration.as_ref().map(|d| d.get("duration")).transpose()?),
            other => {
                return Err(MockError::InvalidFault(format!(
                    "unknown fault kind `{other}` (expected latency, status, rate-limit, malformed, truncated, reset or stall)"
                )))
            }
        };
        fault.method = self.method.map(|m| m.to_ascii_uppercase());
        fault.path = self.path;
        if let Some(h) = self.header {
            if axum::http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                return Err(MockError::InvalidFault(format!(
                    "`header.name`: `{}` is not an HTTP header name",
                    h.name
                )));
            }
            fault.header = Some(HeaderScope::new(h.name, h.prefix));
        }
        fault.remaining = self.times;
        if let Some(r) = self.ratio {
            if !(0.0..=1.0).contains(&r) {
                return Err(MockError::InvalidFault(format!(
                    "`ratio`: {r} is not within 0..=1"
                )));
            }
            fault.ratio = r;
        }
        Ok(fault)
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `3m` or a bare number of seconds.
#[must_use]
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" | "sec" | "secs" => value,
        "m" | "min" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

mod duration_ms {
    use std::time::Duration;

    use serde::Deserialize as _;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let spec = super::DurationSpec::deserialize(d)?;
        spec.get("duration").map_err(serde::de::Error::custom)
    }
}

mod opt_duration_ms {
    use std::time::Duration;

    use serde::Deserialize as _;

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<super::DurationSpec>::deserialize(d)?
            .map(|spec| spec.get("duration"))
            .transpose()
            .map_err(serde::de::Error::custom)
    }

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format!("{}ms", d.as_millis())),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_consumed_in_order() {
        let none = HeaderMap::new();
        let set = FaultSet::default();
        set.push(Fault::status(503).on_path("/v1/chat").times(2));
        set.push(Fault::reset().on_method("get"));
        assert_eq!(set.take("POST", "/v1/embeddings", &none), None);
        assert_eq!(
            set.take("POST", "/v1/chat/completions", &none)
                .map(|k| k.name()),
            Some("status")
        );
        assert_eq!(
            set.take("POST", "/v1/chat/completions", &none)
                .map(|k| k.name()),
            Some("status")
        );
        assert_eq!(set.take("POST", "/v1/chat/completions", &none), None);
        assert_eq!(set.take("GET", "/v1/models", &none), Some(FaultKind::Reset));
        assert_eq!(set.list().len(), 1);
    }

    #[test]
    fn ratio_zero_never_hits() {
        let none = HeaderMap::new();
        let set = FaultSet::default();
        set.push(Fault::status(500).ratio(0.0));
        assert!((0..100).all(|_| set.take("GET", "/", &none).is_none()));
    }

    fn correlated(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-correlation-id", id.parse().unwrap());
        headers
    }

    #[test]
    fn a_header_scope_hits_only_its_runs_calls() {
        let set = FaultSet::default();
        set.push(Fault::status(503).on_header("X-Correlation-Id", "run-a-"));
        set.push(Fault::status(502).on_header("x-correlation-id", "run-b-"));
        let hit = |id: &str| match set.take("POST", "/v1/x", &correlated(id)) {
            Some(FaultKind::Status { status, .. }) => Some(status),
            _ => None,
        };
        assert_eq!(hit("run-a-17"), Some(503));
        assert_eq!(hit("run-b-2"), Some(502));
        assert_eq!(hit("run-c-1"), None);
        assert_eq!(hit("xrun-a-17"), None, "a prefix, not a substring");
        assert_eq!(set.take("POST", "/v1/x", &HeaderMap::new()), None);

        // One run's clean-up leaves the other's faults, and the unscoped ones.
        set.push(Fault::reset());
        assert_eq!(
            set.clear_scoped(&HeaderScope::new("x-correlation-id", "run-a-")),
            1
        );
        assert_eq!(
            set.take("POST", "/v1/x", &correlated("run-a-18")),
            Some(FaultKind::Reset)
        );
        assert_eq!(hit("run-b-3"), Some(502));
        assert_eq!(set.list().len(), 2);
    }

    #[test]
    fn a_header_scope_reads_back_from_the_admin_json() {
        let fault = Fault::latency(Duration::from_millis(5)).on_header("x-correlation-id", "r1-");
        let json = serde_json::to_value(FaultSpec::from(&fault)).unwrap();
        assert_eq!(
            json["header"],
            serde_json::json!({"name": "x-correlation-id", "prefix": "r1-"})
        );
        let back: FaultSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back.into_fault().unwrap(), fault);
        let bad: FaultSpec = serde_json::from_value(serde_json::json!({
            "kind": "reset", "header": {"name": "bad name", "prefix": "x"}
        }))
        .unwrap();
        assert_eq!(
            bad.into_fault().unwrap_err().to_string(),
            "invalid fault: `header.name`: `bad name` is not an HTTP header name"
        );
    }

    #[test]
    fn spec_parses_and_reports_errors() {
        let spec: FaultSpec = serde_json::from_value(serde_json::json!({
            "kind": "rate-limit", "retry-after": "2s", "times": 1, "path": "/v1"
        }))
        .unwrap();
        let fault = spec.into_fault().unwrap();
        assert_eq!(
            fault.kind,
            FaultKind::RateLimit {
                retry_after: Duration::from_secs(2)
            }
        );
        let bad: FaultSpec =
            serde_json::from_value(serde_json::json!({"kind": "latency"})).unwrap();
        assert_eq!(
            bad.into_fault().unwrap_err().to_string(),
            "invalid fault: fault `latency` needs `delay`"
        );
        let unknown =
            serde_json::from_value::<FaultSpec>(serde_json::json!({"kind": "x", "colour": 1}));
        assert!(unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `colour`"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("soon"), None);
    }
}
