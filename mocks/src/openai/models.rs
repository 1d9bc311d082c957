//! The one list of models the OpenAI mock knows, and how it refuses others.
//!
//! Every endpoint that takes a `model` (chat, responses, embeddings,
//! transcriptions, `GET /v1/models/{id}`) asks [`require`], so a typo in a
//! client's configuration fails against the mock exactly as it fails against
//! the real service: 404 `model_not_found`, not a cheerful answer that hides
//! the bug until production.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::error_response;

/// A model the mock serves.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) id: &'static str,
    created: i64,
    /// A reasoning model: refuses `max_tokens` in favour of `max_completion_tokens`.
    pub(crate) reasoning: bool,
}

const fn chat(id: &'static str, created: i64) -> Model {
    Model {
        id,
        created,
        reasoning: false,
    }
}

const fn reasoning(id: &'static str, created: i64) -> Model {
    Model {
        id,
        created,
        reasoning: true,
    }
}

/// Known models: chat/responses, embeddings, transcription.
const MODELS: &[Model] = &[
    reasoning("gpt-5", 1_754_425_777),
    reasoning("gpt-5-mini", 1_754_425_928),
    reasoning("gpt-5-nano", 1_754_426_384),
    reasoning("o3", 1_744_225_308),
    reasoning("o3-mini", 1_737_146_383),
    reasoning("o4-mini", 1_744_225_351),
    chat("gpt-4.1", 1_744_316_542),
    chat("gpt-4.1-mini", 1_744_318_173),
    chat("gpt-4.1-nano", 1_744_321_707),
    chat("gpt-4o", 1_715_367_049),
    chat("gpt-4o-2024-08-06", 1_722_814_719),
    chat("gpt-4o-mini", 1_721_172_741),
    chat("gpt-4-turbo", 1_712_361_441),
    chat("gpt-3.5-turbo", 1_677_610_602),
    chat("text-embedding-3-small", 1_705_948_997),
    chat("text-embedding-3-large", 1_705_953_180),
    chat("text-embedding-ada-002", 1_671_217_299),
    chat("whisper-1", 1_677_532_384),
    chat("gpt-4o-transcribe", 1_742_068_463),
    chat("gpt-4o-mini-transcribe", 1_742_068_596),
];

/// The model called `id`, or the API's 404 `model_not_found` answer.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
pub(crate) fn require(id: &str) -> Result<&'static Model, Response> {
    MODELS.iter().find(|m| m.id == id).ok_or_else(|| {
        error_response(
            StatusCode::NOT_FOUND,
            &format!("The model `{id}` does not exist or you do not have access to it."),
            "invalid_request_error",
            Value::Null,
            Value::from("model_not_found"),
        )
    })
}

impl Model {
    /// The model object of `GET /v1/models`.
    pub(crate) fn object(&self) -> Value {
        json!({ "id": self.id, "object": "model", "created": self.created, "owned_by": "system" })
    }
}

/// `GET /v1/models`.
pub(crate) fn list() -> Value {
    json!({ "object": "list", "data": MODELS.iter().map(Model::object).collect::<Vec<_>>() })
}
