//! The request journal: every API request a mock received, in order.
//!
//! Admin requests (`/__admin/...`) are not journaled. The journal is bounded
//! (oldest entries are dropped first) so that a long load test cannot exhaust
//! memory; the bound is far above what a scenario produces.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, Uri};
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Entries kept before the oldest are dropped.
const DEFAULT_CAPACITY: usize = 100_000;

/// One request received by a mock, with the outcome it got. Serialized as the
/// admin API lists it (`GET /__admin/journal`); a client reads the list back
/// into this type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    /// Position in the journal, from 1; never reused, also after a reset.
    pub seq: u64,
    /// When the request arrived.
    pub received_at: DateTime<Utc>,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    /// Headers with lower-case names; repeated headers joined by `, `.
    pub headers: BTreeMap<String, String>,
    /// The request body (text if UTF-8, else `bodyBase64` in JSON).
    #[serde(
        serialize_with = "serialize_body",
        deserialize_with = "deserialize_body",
        rename = "body"
    )]
    pub body: Bytes,
    /// Status code the mock answered with (`None` for a reset or stalled call).
    pub status: Option<u16>,
    /// Name of the fault injected into this call, if one was.
    pub fault: Option<String>,
}

fn serialize_body<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => s.serialize_str(text),
        Err(_) => s.serialize_str(&format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(body)
        )),
    }
}

fn deserialize_body<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    let text = String::deserialize(d)?;
    match text.strip_prefix("base64:") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(Bytes::from)
            .map_err(|e| serde::de::Error::custom(format!("`body`: bad base64: {e}"))),
        None => Ok(Bytes::from(text)),
    }
}

impl RecordedRequest {
    /// The body parsed as JSON, if it is JSON.
    #[must_use]
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body parsed as `application/x-www-form-urlencoded` pairs.
    #[must_use]
    pub fn body_form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// A header value by (case-insensitive) name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// This request as a [`wiremock::Request`], so that wiremock's matchers
    /// (`method`, `path`, `body_partial_json`, ...) can judge it.
    #[must_use]
    pub fn to_wiremock(&self) -> wiremock::Request {
        let target = match &self.query {
            Some(q) => format!("http://localhost{}?{q}", self.path),
            None => format!("http://localhost{}", self.path),
        };
        let url = reqwest::Url::parse(&target).unwrap_or_else(|_| {
            reqwest::Url::parse("http://localhost/").expect("static url parses")
        });
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                axum::http::HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        wiremock::Request {
            url,
            method: self.method.parse().unwrap_or(Method::GET),
            headers,
            body: self.body.to_vec(),
        }
    }
}

/// A bounded, thread-safe, append-only log of [`RecordedRequest`]s.
#[derive(Debug)]
pub struct Journal {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    entries: VecDeque<RecordedRequest>,
    next_seq: u64,
    capacity: usize,
}

impl Default for Journal {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Journal {
    /// A journal keeping at most `capacity` entries.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                next_seq: 1,
                capacity: capacity.max(1),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a request and returns its sequence number.
    pub(crate) fn record(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> u64 {
        let mut map = BTreeMap::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            map.entry(name.as_str().to_owned())
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        if inner.entries.len() >= inner.capacity {
            inner.entries.pop_front();
        }
        inner.entries.push_back(RecordedRequest {
            seq,
            received_at: Utc::now(),
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: map,
            body,
            status: None,
            fault: None,
        });
        seq
    }

    /// Sets the outcome of the request `seq`.
    pub(crate) fn complete(&self, seq: u64, status: Option<u16>, fault: Option<&str>) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.iter_mut().rev().find(|e| e.seq == seq) {
            if status.is_some() {
                entry.status = status;
            }
            if let Some(fault) = fault {
                entry.fault = Some(fault.to_owned());
            }
        }
    }

    /// A copy of all entries, oldest first.
    #[must_use]
    pub fn entries(&self) -> Vec<RecordedRequest> {
        self.lock().entries.iter().cloned().collect()
    }

    /// Entries for which `filter` holds.
    #[must_use]
    pub fn matching(&self, filter: impl Fn(&RecordedRequest) -> bool) -> Vec<RecordedRequest> {
        self.lock()
            .entries
            .iter()
            .filter(|e| filter(e))
            .cloned()
            .collect()
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no request was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets all entries (sequence numbers keep growing).
    pub fn clear(&self) {
        self.lock().entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_bounds() {
        let journal = Journal::with_capacity(2);
        let uri: Uri = "/a?x=1".parse().unwrap();
        for _ in 0..3 {
            journal.record(
                &Method::POST,
                &uri,
                &HeaderMap::new(),
                Bytes::from_static(b"{}"),
            );
        }
        let entries = journal.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].seq, 2);
        assert_eq!(entries[1].query.as_deref(), Some("x=1"));
        journal.complete(3, Some(201), Some("latency"));
        assert_eq!(journal.entries()[1].status, Some(201));
        assert_eq!(journal.entries()[1].fault.as_deref(), Some("latency"));
    }

    #[test]
    fn converts_to_wiremock_request() {
        use wiremock::matchers::{body_partial_json, method, path, query_param};
        use wiremock::Match as _;
        let journal = Journal::default();
        let uri: Uri = "/v1/x?limit=3".parse().unwrap();
        journal.record(
            &Method::POST,
            &uri,
            &HeaderMap::new(),
            Bytes::from_static(br#"{"a":1,"b":2}"#),
        );
        let req = journal.entries()[0].to_wiremock();
        assert!(method("POST").matches(&req));
        assert!(path("/v1/x").matches(&req));
        assert!(query_param("limit", "3").matches(&req));
        assert!(body_partial_json(serde_json::json!({"a":1})).matches(&req));
        assert!(!body_partial_json(serde_json::json!({"a":2})).matches(&req));
    }
}
