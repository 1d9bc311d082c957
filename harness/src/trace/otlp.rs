//! OTLP's messages and the harness's [`Span`], both ways.
//!
//! In: what the receiver takes from an export request. Ids become
//! lower-case hex (OTLP/JSON's spelling and the `traceparent`'s), attribute
//! values become JSON, the resource's `service.name` names the service. A
//! request with an id of the wrong length is refused as a whole, naming the
//! span (`resourceSpans[0].scopeSpans[1].spans[4]`): a service that sends
//! one is broken, and keeping the rest would hide it.
//!
//! Out: a run's spans as one `ExportTraceServiceRequest` (one
//! `resourceSpans` per service), which [`to_otlp_json`] writes as OTLP/JSON
//! (`reports/traces.json`) for Jaeger, Tempo or any OTLP backend to import.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{self as otlp, ResourceSpans, ScopeSpans};
use serde_json::Value as Json;

use super::{Span, SpanEvent, SpanKind, SpanStatus, StatusCode};

/// The resource attribute naming the service.
const SERVICE_NAME: &str = "service.name";
/// The service of a span whose resource has no `service.name`.
const UNKNOWN_SERVICE: &str = "unknown";
/// The instrumentation scope of the spans [`to_request`] writes.
const SCOPE: &str = "tekup-harness";

/// A span of an export request that cannot be taken, and which one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct InvalidSpan {
    /// `resourceSpans[i].scopeSpans[j].spans[k]`.
    pub at: String,
    pub problem: String,
}

/// The spans of an export request, or the first span that is malformed.
pub fn spans_of(request: &ExportTraceServiceRequest) -> Result<Vec<Span>, InvalidSpan> {
    let mut spans = Vec::new();
    for (i, resource) in request.resource_spans.iter().enumerate() {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == SERVICE_NAME))
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned());
        for (j, scope) in resource.scope_spans.iter().enumerate() {
            for (k, span) in scope.spans.iter().enumerate() {
                let at = || format!("resourceSpans[{i}].scopeSpans[{j}].spans[{k}]");
                let invalid = |problem: String| InvalidSpan { at: at(), problem };
                spans.push(span_of(span, &service).map_err(invalid)?);
            }
        }
    }
    Ok(spans)
}

fn span_of(span: &otlp::Span, service: &str) -> Result<Span, String> {
    let trace_id = id_hex("traceId", &span.trace_id, 16)?;
    let span_id = id_hex("spanId", &span.span_id, 8)?;
    let parent_span_id = if span.parent_span_id.is_empty() {
        None
    } else {
        // An all-zero parent is how some SDKs say "no parent".
        Some(id_hex("parentSpanId", &span.parent_span_id, 8)).and_then(|p| match p {
            Err(e) if e.ends_with("all zeros") => None,
            other => Some(other),
        })
    }
    .transpose()?;
    let status = span
        .status
        .as_ref()
        .map_or_else(SpanStatus::default, |s| SpanStatus {
            code: StatusCode::from_otlp(s.code),
            message: s.message.clone(),
        });
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        service: service.to_owned(),
        name: span.name.clone(),
        kind: SpanKind::from_otlp(span.kind),
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano,
        attributes: attributes(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| SpanEvent {
                name: e.name.clone(),
                time_unix_nano: e.time_unix_nano,
                attributes: attributes(&e.attributes),
            })
            .collect(),
        status,
    })
}

/// An id as lower-case hex, refused when it is not `len` bytes or is all
/// zeros (OTLP's invalid ids).
fn id_hex(field: &str, id: &[u8], len: usize) -> Result<String, String> {
    if id.len() != len {
        return Err(format!("{field} has {} bytes, expected {len}", id.len()));
    }
    if id.iter().all(|b| *b == 0) {
        return Err(format!("{field} is all zeros"));
    }
    Ok(hex::encode(id))
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, Json> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Json::Null, json_of),
            )
        })
        .collect()
}

/// An attribute value as JSON: bytes as base64 (OTLP/JSON's spelling), a
/// double that JSON cannot hold (NaN, infinities) as its text.
fn json_of(value: &AnyValue) -> Json {
    use any_value::Value as V;
    match &value.value {
        None | Some(V::StringValueStrindex(_)) => Json::Null,
        Some(V::StringValue(s)) => Json::String(s.clone()),
        Some(V::BoolValue(b)) => Json::Bool(*b),
        Some(V::IntValue(i)) => Json::from(*i),
        Some(V::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Json::String(d.to_string()), Json::Number),
        Some(V::ArrayValue(a)) => Json::Array(a.values.iter().map(json_of).collect()),
        Some(V::KvlistValue(kv)) => Json::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(Json::Null, json_of),
                    )
                })
                .collect(),
        ),
        Some(V::BytesValue(b)) => {
            use base64::Engine as _;
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

fn any_of(value: &Json) -> AnyValue {
    use any_value::Value as V;
    let value = match value {
        Json::Null => None,
        Json::Bool(b) => Some(V::BoolValue(*b)),
        Json::Number(n) => Some(match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap_or_default()),
        }),
        Json::String(s) => Some(V::StringValue(s.clone())),
        Json::Array(items) => Some(V::ArrayValue(ArrayValue {
            values: items.iter().map(any_of).collect(),
        })),
        Json::Object(map) => Some(V::KvlistValue(KeyValueList {
            values: map.iter().map(|(k, v)| key_value(k, v)).collect(),
        })),
    };
    AnyValue { value }
}

fn key_value(key: &str, value: &Json) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(any_of(value)),
        ..Default::default()
    }
}

/// Hex back to bytes; the store only holds what [`spans_of`] made, so a
/// bad id (a hand-made span) becomes empty rather than an error.
fn id_bytes(hex_id: &str) -> Vec<u8> {
    hex::decode(hex_id).unwrap_or_default()
}

/// `spans` as one export request: a `resourceSpans` per service (ordered by
/// name), its spans in the order given.
pub fn to_request(spans: &[Span]) -> ExportTraceServiceRequest {
    let mut by_service: BTreeMap<&str, Vec<otlp::Span>> = BTreeMap::new();
    for span in spans {
        by_service
            .entry(span.service.as_str())
            .or_default()
            .push(otlp_span(span));
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![key_value(SERVICE_NAME, &Json::from(service))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE.to_owned(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn otlp_span(span: &Span) -> otlp::Span {
    let kvs = |attributes: &BTreeMap<String, Json>| -> Vec<KeyValue> {
        attributes.iter().map(|(k, v)| key_value(k, v)).collect()
    };
    otlp::Span {
        trace_id: id_bytes(&span.trace_id),
        span_id: id_bytes(&span.span_id),
        parent_span_id: span
            .parent_span_id
            .as_deref()
            .map(id_bytes)
            .unwrap_or_default(),
        name: span.name.clone(),
        kind: span.kind.to_otlp(),
        start_time_unix_nano: span.start_unix_nano,
        end_time_unix_nano: span.end_unix_nano,
        attributes: kvs(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| otlp::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: kvs(&e.attributes),
                dropped_attributes_count: 0,
            })
            .collect(),
        status: Some(otlp::Status {
            message: span.status.message.clone(),
            code: span.status.code.to_otlp(),
        }),
        ..Default::default()
    }
}

/// `spans` as OTLP/JSON: an `ExportTraceServiceRequest` with hex ids and
/// nanosecond times as strings, as OTLP/JSON requires.
pub fn to_otlp_json(spans: &[Span]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&to_request(spans))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Vec<Span> {
        let mut attributes = BTreeMap::new();
        attributes.insert("tekup.operation".to_owned(), Json::from("createLead"));
        attributes.insert("http.response.status_code".to_owned(), Json::from(201));
        attributes.insert("ratio".to_owned(), Json::from(0.25));
        attributes.insert("ok".to_owned(), Json::from(true));
        attributes.insert("tags".to_owned(), serde_json::json!(["a", 1]));
        attributes.insert("nested".to_owned(), serde_json::json!({"k": "v"}));
        let root = Span {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            parent_span_id: None,
            service: "flow-api".into(),
            name: "POST /leads".into(),
            kind: SpanKind::Server,
            start_unix_nano: 1_700_000_000_000_000_000,
            end_unix_nano: 1_700_000_000_050_000_000,
            attributes,
            events: vec![SpanEvent {
                name: "retry".into(),
                time_unix_nano: 1_700_000_000_010_000_000,
                attributes: [("attempt".to_owned(), Json::from(2))]
                    .into_iter()
                    .collect(),
            }],
            status: SpanStatus {
                code: StatusCode::Error,
                message: "boom".into(),
            },
        };
        let child = Span {
            span_id: "00f067aa0ba902b7".into(),
            parent_span_id: Some(root.span_id.clone()),
            service: "crm-api".into(),
            name: "POST /contacts/sync".into(),
            kind: SpanKind::Client,
            attributes: BTreeMap::new(),
            events: Vec::new(),
            status: SpanStatus::default(),
            ..root.clone()
        };
        vec![root, child]
    }

    #[test]
    fn spans_survive_the_otlp_json_round_trip() {
        let spans = sample();
        let text = to_otlp_json(&spans).unwrap();
        // OTLP/JSON's spelling: hex ids, camelCase keys, times as strings.
        assert!(
            text.contains("\"traceId\": \"0af7651916cd43dd8448eb211c80319c\""),
            "{text}"
        );
        assert!(
            text.contains("\"startTimeUnixNano\": \"1700000000000000000\""),
            "{text}"
        );
        assert!(text.contains("\"resourceSpans\""), "{text}");
        let back: ExportTraceServiceRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.resource_spans.len(),
            2,
            "one resourceSpans per service"
        );
        let mut again = spans_of(&back).unwrap();
        again.sort_by(|a, b| a.service.cmp(&b.service));
        let mut expected = spans;
        expected.sort_by(|a, b| a.service.cmp(&b.service));
        assert_eq!(again, expected);
    }

    #[test]
    fn a_bad_id_is_refused_naming_the_span() {
        let mut request = to_request(&sample());
        request.resource_spans[1].scope_spans[0].spans[0].trace_id = vec![1, 2, 3];
        let err = spans_of(&request).unwrap_err();
        assert_eq!(
            err.to_string(),
            "resourceSpans[1].scopeSpans[0].spans[0]: traceId has 3 bytes, expected 16"
        );
        let mut request = to_request(&sample());
        request.resource_spans[0].scope_spans[0].spans[0].span_id = vec![0; 8];
        assert!(spans_of(&request)
            .unwrap_err()
            .to_string()
            .ends_with("spanId is all zeros"));
    }

    #[test]
    fn a_missing_service_name_is_unknown_and_a_zero_parent_is_none() {
        let mut request = to_request(&sample()[..1]);
        request.resource_spans[0].resource = None;
        request.resource_spans[0].scope_spans[0].spans[0].parent_span_id = vec![0; 8];
        let spans = spans_of(&request).unwrap();
        assert_eq!(spans[0].service, "unknown");
        assert_eq!(spans[0].parent_span_id, None);
    }
}
