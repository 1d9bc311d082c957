//! Expectations: "this mock was called n times with a request like this".
//!
//! Matching reuses wiremock's [`Match`] trait and matchers, applied to the
//! journal (each entry is turned into a [`wiremock::Request`]); so a Rust test
//! writes `Expectation::given(method("POST")).and(path("/v1/embeddings")).times(1)`
//! exactly as it would against a wiremock `MockServer`. The admin API accepts
//! a JSON [`ExpectationSpec`] that is translated into the same matchers.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wiremock::matchers;
use wiremock::Match;

use crate::error::MockError;
use crate::journal::RecordedRequest;

/// How many matching calls are expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Times {
    /// At least this many.
    pub min: u64,
    /// At most this many (`None`: no upper bound).
    pub max: Option<u64>,
}

impl Times {
    fn contains(self, n: u64) -> bool {
        n >= self.min && self.max.is_none_or(|max| n <= max)
    }
}

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) if max == self.min => write!(f, "exactly {max}"),
            Some(max) => write!(f, "between {} and {max}", self.min),
            None => write!(f, "at least {}", self.min),
        }
    }
}

/// Calls a mock should have received, checked by `verify`.
#[derive(Clone)]
pub struct Expectation {
    name: String,
    matchers: Vec<Arc<dyn Match>>,
    times: Times,
}

impl fmt::Debug for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expectation")
            .field("name", &self.name)
            .field("matchers", &self.matchers.len())
            .field("times", &self.times)
            .finish()
    }
}

impl Expectation {
    /// Calls matching `matcher` (any wiremock matcher); at least one by default.
    #[must_use]
    pub fn given(matcher: impl Match + 'static) -> Self {
        Self {
            name: String::from("expectation"),
            matchers: vec![Arc::new(matcher)],
            times: Times { min: 1, max: None },
        }
    }

    /// Also requires `matcher`.
    #[must_use]
    pub fn and(mut self, matcher: impl Match + 'static) -> Self {
        self.matchers.push(Arc::new(matcher));
        self
    }

    /// Names the expectation in failure reports.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Exactly `n` matching calls.
    #[must_use]
    pub fn times(mut self, n: u64) -> Self {
        self.times = Times {
            min: n,
            max: Some(n),
        };
        self
    }

    /// At least `n` matching calls.
    #[must_use]
    pub fn at_least(mut self, n: u64) -> Self {
        self.times = Times {
            min: n,
            max: self.times.max.filter(|m| *m >= n),
        };
        self
    }

    /// At most `n` matching calls.
    #[must_use]
    pub fn at_most(mut self, n: u64) -> Self {
        self.times = Times {
            min: self.times.min.min(n),
            max: Some(n),
        };
        self
    }

    /// Whether `request` matches every matcher.
    #[must_use]
    pub fn matches(&self, request: &RecordedRequest) -> bool {
        let request = request.to_wiremock();
        self.matchers.iter().all(|m| m.matches(&request))
    }

    /// Checks the expectation against `journal`.
    #[must_use]
    pub fn check(&self, journal: &[RecordedRequest]) -> Outcome {
        let received = journal.iter().filter(|r| self.matches(r)).count() as u64;
        Outcome {
            name: self.name.clone(),
            expected: self.times,
            received,
            satisfied: self.times.contains(received),
        }
    }
}

/// The result of checking one [`Expectation`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// The expectation's name.
    pub name: String,
    /// Expected number of calls.
    pub expected: Times,
    /// Matching calls received.
    pub received: u64,
    /// Whether `received` is within `expected`.
    pub satisfied: bool,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: expected {} matching call(s), received {}",
            self.name, self.expected, self.received
        )
    }
}

/// Turns outcomes into `Ok` or a [`MockError::Verification`] listing the failures.
pub(crate) fn verdict(outcomes: &[Outcome]) -> Result<(), MockError> {
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.satisfied)
        .map(|o| format!("- {o}"))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(MockError::Verification(failures.join("\n")))
    }
}

/// An expectation as JSON for the admin API (`POST /__admin/expectations`):
/// `{"name": "one chat", "method": "POST", "path": "/v1/chat/completions",
///   "body-json": {"model": "gpt-4o"}, "times": 1}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ExpectationSpec {
    name: Option<String>,
    method: Option<String>,
    path: Option<String>,
    path_prefix: Option<String>,
    path_regex: Option<String>,
    #[serde(default)]
    query: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    body_contains: Option<String>,
    body_json: Option<serde_json::Value>,
    times: Option<u64>,
    at_least: Option<u64>,
    at_most: Option<u64>,
}

impl ExpectationSpec {
    /// Checks the spec and builds the [`Expectation`].
    pub fn into_expectation(self) -> Result<Expectation, MockError> {
        let mut list: Vec<Arc<dyn Match>> = Vec::new();
        let mut parts = Vec::new();
        if let Some(m) = &self.method {
            list.push(Arc::new(matchers::method(m.to_ascii_uppercase().as_str())));
            parts.push(m.to_ascii_uppercase());
        }
        if let Some(p) = &self.path {
            list.push(Arc::new(matchers::path(p.as_str())));
            parts.push(p.clone());
        }
        if let Some(p) = &self.path_prefix {
            let re = format!("^{}", regex::escape(p));
            list.push(Arc::new(matchers::path_regex(re)));
            parts.push(format!("{p}*"));
        }
        if let Some(re) = &self.path_regex {
            regex::Regex::new(re)
                .map_err(|e| MockError::InvalidExpectation(format!("`path-regex`: {e}")))?;
            list.push(Arc::new(matchers::path_regex(re.as_str())));
            parts.push(format!("~{re}"));
        }
        for (k, v) in &self.query {
            list.push(Arc::new(matchers::query_param(k.as_str(), v.as_str())));
        }
        for (k, v) in &self.headers {
            list.push(Arc::new(matchers::header(k.as_str(), v.as_str())));
        }
        if let Some(s) = &self.body_contains {
            list.push(Arc::new(matchers::body_string_contains(s.as_str())));
        }
        if let Some(j) = &self.body_json {
            list.push(Arc::new(matchers::body_partial_json(j.clone())));
        }
        let times = match (self.times, self.at_least, self.at_most) {
            (Some(n), None, None) => Times {
                min: n,
                max: Some(n),
            },
            (None, min, max) => Times {
                min: min.unwrap_or(if max.is_some() { 0 } else { 1 }),
                max,
            },
            _ => {
                return Err(MockError::InvalidExpectation(
                    "`times` cannot be combined with `at-least` or `at-most`".into(),
                ))
            }
        };
        if let Some(max) = times.max {
            if max < times.min {
                return Err(MockError::InvalidExpectation(format!(
                    "`at-most` {max} is below `at-least` {}",
                    times.min
                )));
            }
        }
        let name = self.name.unwrap_or_else(|| {
            if parts.is_empty() {
                String::from("any request")
            } else {
                parts.join(" ")
            }
        });
        Ok(Expectation {
            name,
            matchers: list,
            times,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;
    use axum::http::{HeaderMap, Method, Uri};
    use bytes::Bytes;

    fn journal() -> Vec<RecordedRequest> {
        let j = Journal::default();
        let uri: Uri = "/v1/chat/completions".parse().unwrap();
        j.record(
            &Method::POST,
            &uri,
            &HeaderMap::new(),
            Bytes::from_static(br#"{"model":"gpt-4o"}"#),
        );
        j.record(
            &Method::POST,
            &uri,
            &HeaderMap::new(),
            Bytes::from_static(br#"{"model":"gpt-4o-mini"}"#),
        );
        j.entries()
    }

    #[test]
    fn counts_with_wiremock_matchers() {
        let e = Expectation::given(matchers::method("POST"))
            .and(matchers::body_partial_json(
                serde_json::json!({"model": "gpt-4o"}),
            ))
            .named("gpt-4o chat")
            .times(1);
        assert!(e.check(&journal()).satisfied);
        let e = e.times(2);
        let outcome = e.check(&journal());
        assert!(!outcome.satisfied);
        assert_eq!(
            outcome.to_string(),
            "`gpt-4o chat`: expected exactly 2 matching call(s), received 1"
        );
    }

    #[test]
    fn spec_builds_matchers() {
        let spec: ExpectationSpec = serde_json::from_value(serde_json::json!({
            "method": "post", "path-prefix": "/v1/chat", "body-contains": "mini", "at-least": 1
        }))
        .unwrap();
        let e = spec.into_expectation().unwrap();
        let outcome = e.check(&journal());
        assert_eq!(outcome.received, 1);
        assert_eq!(outcome.name, "POST /v1/chat*");
        let bad: ExpectationSpec =
            serde_json::from_value(serde_json::json!({"times": 1, "at-most": 2})).unwrap();
        assert!(bad.into_expectation().is_err());
    }

    #[test]
    fn verdict_lists_failures() {
        let e = Expectation::given(matchers::path("/nope")).named("never");
        let err = verdict(&[e.check(&journal())]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mock expectations were not met:\n- `never`: expected at least 1 matching call(s), received 0"
        );
    }
}
