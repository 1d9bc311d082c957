//! The models the Gemini mock knows, one list for REST and Live.
//!
//! The real service refuses a model it does not have, or one that does not
//! support the method called, with the same sentence everywhere: REST answers
//! 404 `models/X is not found for API version v1beta, or is not supported for
//! generateContent. ...`, the Live API closes the socket with 1008 and that
//! sentence (for `bidiGenerateContent`) as the reason. So each model here
//! carries the methods it supports, as `models.list` reports them, and both
//! surfaces ask [`check`]. A name that is not on the list is refused: a typo
//! in a model name must fail in tests as it fails in production.

use serde_json::{json, Value};

/// A known model and the generation methods it supports.
pub(crate) struct Model {
    pub(crate) name: &'static str,
    pub(crate) methods: &'static [&'static str],
}

const TEXT: &[&str] = &[
    "generateContent",
    "countTokens",
    "createCachedContent",
    "batchGenerateContent",
];
const TEXT_AND_LIVE: &[&str] = &["generateContent", "countTokens", "bidiGenerateContent"];
const LIVE: &[&str] = &["bidiGenerateContent", "countTokens"];
const EMBEDDING: &[&str] = &["embedContent", "batchEmbedContents", "countTokens"];

/// Every model the mock serves.
pub(crate) const MODELS: &[Model] = &[
    Model {
        name: "gemini-2.5-pro",
        methods: TEXT,
    },
    Model {
        name: "gemini-2.5-flash",
        methods: TEXT,
    },
    Model {
        name: "gemini-2.5-flash-lite",
        methods: TEXT,
    },
    Model {
        name: "gemini-2.0-flash",
        methods: TEXT,
    },
    Model {
        name: "gemini-2.0-flash-001",
        methods: TEXT,
    },
    Model {
        name: "gemini-2.0-flash-lite",
        methods: TEXT,
    },
    Model {
        name: "gemini-1.5-flash",
        methods: TEXT,
    },
    Model {
        name: "gemini-2.0-flash-exp",
        methods: TEXT_AND_LIVE,
    },
    Model {
        name: "gemini-2.0-flash-live-001",
        methods: LIVE,
    },
    Model {
        name: "gemini-live-2.5-flash-preview",
        methods: LIVE,
    },
    Model {
        name: "gemini-2.5-flash-native-audio-preview-09-2025",
        methods: LIVE,
    },
    Model {
        name: "gemini-2.5-flash-native-audio-preview-12-2025",
        methods: LIVE,
    },
    Model {
        name: "text-embedding-004",
        methods: EMBEDDING,
    },
    Model {
        name: "gemini-embedding-001",
        methods: EMBEDDING,
    },
];

/// The model named `name` (with or without the `models/` prefix).
pub(crate) fn find(name: &str) -> Option<&'static Model> {
    let name = name.strip_prefix("models/").unwrap_or(name);
    MODELS.iter().find(|m| m.name == name)
}

/// `Ok` when `model` exists and supports `method`; else the service's sentence.
pub(crate) fn check(model: &str, method: &str, version: &str) -> Result<(), String> {
    match find(model) {
        Some(m) if m.methods.contains(&method) => Ok(()),
        _ => {
            let bare = model.strip_prefix("models/").unwrap_or(model);
            Err(format!(
                "models/{bare} is not found for API version {version}, or is not supported for {method}. \
                 Call ListModels to see the list of available models and their supported methods."
            ))
        }
    }
}

/// The model as `models.get` and `models.list` show it.
pub(crate) fn object(model: &Model) -> Value {
    let embedding = model.methods.contains(&"embedContent");
    json!({
        "name": format!("models/{}", model.name), "version": "001", "displayName": model.name,
        "description": format!("Mock of {}", model.name),
        "inputTokenLimit": if embedding { 2048 } else { 1_048_576 },
        "outputTokenLimit": if embedding { 1 } else { 8192 },
        "supportedGenerationMethods": model.methods,
        "temperature": 1.0, "topP": 0.95, "topK": 40
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_list_answers_rest_and_live() {
        assert!(check("gemini-2.0-flash", "generateContent", "v1beta").is_ok());
        assert!(check(
            "models/gemini-2.0-flash-live-001",
            "bidiGenerateContent",
            "v1beta"
        )
        .is_ok());
        let err = check("models/gemini-2.0-flash", "bidiGenerateContent", "v1beta").unwrap_err();
        assert!(err.starts_with("models/gemini-2.0-flash is not found for API version v1beta, or is not supported for bidiGenerateContent."), "{err}");
        let err = check("gemini-2.0-flsh", "generateContent", "v1").unwrap_err();
        assert!(
            err.starts_with("models/gemini-2.0-flsh is not found for API version v1,"),
            "{err}"
        );
    }
}
