//! The stream of a created response: the typed server-sent events the SDKs
//! parse (`response.created` ... `response.completed`), numbered by
//! `sequence_number`, and the output items they carry.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::Created;
use crate::openai::answer::{split_chars, split_words, Answer, Output};

/// The output item of `answer`; `done: false` gives the empty in-progress
/// item a stream announces first.
pub(super) fn output_item(answer: &Answer, item_id: &str, call_id: &str, done: bool) -> Value {
    let status = match (done, answer.truncated) {
        (false, _) => "in_progress",
        (true, true) => "incomplete",
        (true, false) => "completed",
    };
    match &answer.output {
        Output::Text(text) => {
            let content = if done {
                json!([text_part(text)])
            } else {
                json!([])
            };
            json!({ "id": item_id, "type": "message", "status": status, "role": "assistant", "content": content })
        }
        Output::Call { name, arguments } => json!({
            "id": item_id, "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": if done { arguments.as_str() } else { "" }
        }),
    }
}

fn text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

/// The typed server-sent events of a response, each with its sequence number.
fn events(created: &Created) -> Vec<Value> {
    let mut events = Vec::new();
    let mut in_progress = created.response.clone();
    in_progress["status"] = Value::from("in_progress");
    in_progress["output"] = json!([]);
    in_progress["usage"] = Value::Null;
    in_progress["completed_at"] = Value::Null;
    in_progress["incomplete_details"] = Value::Null;
    events.push(json!({ "type": "response.created", "response": in_progress }));
    events.push(json!({ "type": "response.in_progress", "response": in_progress }));
    let item = &created.response["output"][0];
    let id = created.item_id.as_str();
    let call_id = item
        .get("call_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    events.push(
        json!({ "type": "response.output_item.added", "output_index": 0,
        "item": output_item(&created.answer, id, call_id, false) }),
    );
    match &created.answer.output {
        Output::Text(text) => {
            events.push(
                json!({ "type": "response.content_part.added", "item_id": id,
                "output_index": 0, "content_index": 0, "part": text_part("") }),
            );
            for piece in split_words(text) {
                events.push(json!({ "type": "response.output_text.delta", "item_id": id,
                    "output_index": 0, "content_index": 0, "delta": piece, "logprobs": [] }));
            }
            events.push(json!({ "type": "response.output_text.done", "item_id": id,
                "output_index": 0, "content_index": 0, "text": text, "logprobs": [] }));
            events.push(json!({ "type": "response.content_part.done", "item_id": id,
                "output_index": 0, "content_index": 0, "part": text_part(text) }));
        }
        Output::Call { arguments, .. } => {
            for piece in split_chars(arguments, 8) {
                events.push(json!({ "type": "response.function_call_arguments.delta",
                    "item_id": id, "output_index": 0, "delta": piece }));
            }
            events.push(json!({ "type": "response.function_call_arguments.done",
                "item_id": id, "output_index": 0, "arguments": arguments }));
        }
    }
    events.push(json!({ "type": "response.output_item.done", "output_index": 0, "item": item }));
    let last = if created.answer.truncated {
        "response.incomplete"
    } else {
        "response.completed"
    };
    events.push(json!({ "type": last, "response": created.response }));
    for (n, event) in events.iter_mut().enumerate() {
        if let Value::Object(map) = event {
            map.insert("sequence_number".into(), Value::from(n));
        }
    }
    events
}

/// `event: <type>` / `data: <json>` frames; the Responses stream has no `[DONE]`.
pub(super) fn stream(created: &Created) -> Response {
    let frames: Vec<Result<Bytes, Infallible>> = events(created)
        .into_iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap_or_default().to_owned();
            Ok(Bytes::from(format!("event: {kind}\ndata: {e}\n\n")))
        })
        .collect();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(futures_util::stream::iter(frames)),
    )
        .into_response()
}
