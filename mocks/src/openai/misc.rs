//! Embeddings, audio transcriptions and the model list.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::{invalid, models, OpenAiState};
use crate::script::estimate_tokens;

pub(super) async fn embeddings(body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return invalid(
            "We could not parse the JSON body of your request.",
            "",
            None,
        );
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return invalid("you must provide a model parameter", "model", None);
    };
    if let Err(refused) = models::require(model) {
        return refused;
    }
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::Array(a)) if a.iter().all(Value::is_number) => vec![Value::Array(a.clone()).to_string()],
        Some(Value::Array(a)) if a.iter().all(Value::is_array) => a.iter().map(Value::to_string).collect(),
        None => return invalid("Missing required parameter: 'input'.", "input", Some("missing_required_parameter")),
        Some(_) => return invalid("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", "input", None),
    };
    if inputs.is_empty() || inputs.iter().any(String::is_empty) {
        return invalid("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", "input", None);
    }
    let native = if model.contains("3-large") {
        3072
    } else {
        1536
    };
    let dims = match request.get("dimensions").and_then(Value::as_u64) {
        Some(d) if d == 0 || d > native => {
            return invalid(
                &format!("This model does not support specifying dimensions ({d})."),
                "dimensions",
                None,
            )
        }
        Some(d) => d as usize,
        None => native as usize,
    };
    let base64 = match request.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return invalid(
                &format!("Invalid value: '{other}'. Supported values are: 'float' and 'base64'."),
                "encoding_format",
                Some("invalid_value"),
            )
        }
    };
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += estimate_tokens(text);
            let vector = embed(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::from(vector)
            };
            json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    Json(json!({
        "object": "list", "data": data, "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens }
    }))
    .into_response()
}

/// A deterministic unit vector for `text`: same text, same embedding.
pub(crate) fn embed(text: &str, dims: usize) -> Vec<f32> {
    let seed: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let mut rng = rand::rngs::StdRng::from_seed(seed);
    let raw: Vec<f32> = (0..dims).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}

pub(super) async fn transcriptions(
    State(state): State<Arc<OpenAiState>>,
    mut multipart: Multipart,
) -> Response {
    let mut file_name = None;
    let mut file_len = 0usize;
    let mut model = None;
    let mut format = String::from("json");
    let mut language = String::from("english");
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return invalid(&format!("Could not parse multipart form: {e}"), "", None),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            file_name = Some(field.file_name().unwrap_or("file").to_owned());
            file_len = field.bytes().await.map(|b| b.len()).unwrap_or(0);
            continue;
        }
        let value = field.text().await.unwrap_or_default();
        match name.as_str() {
            "model" => model = Some(value),
            "response_format" => format = value,
            "language" => language = value,
            _ => {}
        }
    }
    let Some(file_name) = file_name else {
        return invalid(
            "Missing required parameter: 'file'.",
            "file",
            Some("missing_required_parameter"),
        );
    };
    let Some(model) = model else {
        return invalid("you must provide a model parameter", "model", None);
    };
    if let Err(refused) = models::require(&model) {
        return refused;
    }
    if file_len == 0 {
        return invalid(
            "The audio file could not be decoded or its format is not supported.",
            "file",
            None,
        );
    }
    let text = state.script.transcript(&file_name);
    let duration = (text.split_whitespace().count() as f64 * 0.4).max(1.0);
    match format.as_str() {
        "json" => Json(json!({ "text": text, "usage": { "type": "duration", "seconds": duration.ceil() as u64 } })).into_response(),
        "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response(),
        "verbose_json" => Json(json!({
            "task": "transcribe", "language": language, "duration": duration, "text": text,
            "segments": [{
                "id": 0, "seek": 0, "start": 0.0, "end": duration, "text": format!(" {text}"), "tokens": [50364],
                "temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01
            }],
            "usage": { "type": "duration", "seconds": duration.ceil() as u64 }
        }))
        .into_response(),
        "srt" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("1\n00:00:00,000 --> {}\n{text}\n\n", timestamp(duration, ','))).into_response(),
        "vtt" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("WEBVTT\n\n00:00:00.000 --> {}\n{text}\n\n", timestamp(duration, '.'))).into_response(),
        other => invalid(
            &format!("Invalid value: '{other}'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'."),
            "response_format",
            Some("invalid_value"),
        ),
    }
}

fn timestamp(secs: f64, sep: char) -> String {
    let ms = (secs * 1000.0) as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

pub(super) async fn list_models() -> Json<Value> {
    Json(models::list())
}

pub(super) async fn get_model(Path(model): Path<String>) -> Response {
    match models::require(&model) {
        Ok(known) => Json(known.object()).into_response(),
        Err(refused) => refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embed("hello", 64);
        assert_eq!(a, embed("hello", 64));
        assert_ne!(a, embed("hellO", 64));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}
