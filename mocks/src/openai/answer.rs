//! What the model says, shared by chat completions and the Responses API.
//!
//! Both endpoints reduce their request to a [`Prompt`], ask the script, and
//! then apply the same rules a real model obeys: `tool_choice: none` forbids
//! a function call, a JSON response format gets JSON, and a token limit cuts
//! the answer where the limit falls (and says so). Keeping this in one place
//! keeps the two endpoints from drifting apart.

use axum::response::Response;
use serde_json::{json, Value};

use super::structured::JsonSchema;
use super::OpenAiState;
use crate::script::{estimate_tokens, Prompt, Reply};

/// The output format the request asks for.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Format {
    /// Free text (the default).
    Text,
    /// Any JSON object (`json_object`, the older JSON mode).
    JsonObject,
    /// JSON valid against a schema (structured outputs).
    JsonSchema(JsonSchema),
}

/// The answer, ready to be put on the wire.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Output {
    /// Assistant text.
    Text(String),
    /// A call of a declared function; `arguments` is JSON text (cut short
    /// when the token limit fell inside it).
    Call { name: String, arguments: String },
}

/// An answer and whether a token limit cut it.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) output: Output,
    pub(super) truncated: bool,
}

/// What the request constrains.
#[derive(Debug, Clone)]
pub(super) struct Constraints {
    pub(super) tool_choice_none: bool,
    pub(super) format: Format,
    /// Most tokens the answer may have.
    pub(super) max_tokens: Option<u64>,
}

impl Answer {
    /// Tokens produced, as usage reports them.
    pub(super) fn tokens(&self) -> u64 {
        match &self.output {
            Output::Text(t) => estimate_tokens(t),
            Output::Call { name, arguments } => estimate_tokens(name) + estimate_tokens(arguments),
        }
    }
}

/// The scripted answer to `prompt` under `constraints`, or the error
/// response when a structured answer cannot be given.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
pub(super) fn answer(
    state: &OpenAiState,
    prompt: &Prompt,
    constraints: &Constraints,
) -> Result<Answer, Response> {
    if let Format::JsonSchema(schema) = &constraints.format {
        let output = match schema.answer(&state.script, prompt, !constraints.tool_choice_none)? {
            Ok(json) => Output::Text(json),
            Err((name, arguments)) => Output::Call {
                name,
                arguments: arguments.to_string(),
            },
        };
        return Ok(limit(output, constraints.max_tokens));
    }
    let mut reply = state.script.answer(prompt);
    if constraints.tool_choice_none {
        if let Reply::FunctionCall { .. } = reply {
            reply = Reply::Text(format!("This is a mock answer to: {}", prompt.user));
        }
    }
    let output = match reply {
        Reply::Text(text) => {
            if constraints.format == Format::JsonObject
                && !serde_json::from_str::<Value>(&text).is_ok_and(|v| v.is_object())
            {
                Output::Text(json!({ "answer": text }).to_string())
            } else {
                Output::Text(text)
            }
        }
        Reply::FunctionCall { name, arguments } => Output::Call {
            name,
            arguments: arguments.to_string(),
        },
    };
    Ok(limit(output, constraints.max_tokens))
}

/// Cuts `output` to `max_tokens` (at about four characters a token, the
/// estimate usage figures use), so that usage counts what was produced.
fn limit(output: Output, max_tokens: Option<u64>) -> Answer {
    let Some(max) = max_tokens else {
        return Answer {
            output,
            truncated: false,
        };
    };
    let cut = |text: &str, budget: u64| -> Option<String> {
        let keep = usize::try_from(budget.saturating_mul(4)).unwrap_or(usize::MAX);
        (text.chars().count() > keep).then(|| text.chars().take(keep).collect())
    };
    match output {
        Output::Text(text) => match cut(&text, max) {
            Some(short) => Answer {
                output: Output::Text(short),
                truncated: true,
            },
            None => Answer {
                output: Output::Text(text),
                truncated: false,
            },
        },
        Output::Call { name, arguments } => {
            let budget = max.saturating_sub(estimate_tokens(&name));
            match cut(&arguments, budget) {
                Some(short) => Answer {
                    output: Output::Call {
                        name,
                        arguments: short,
                    },
                    truncated: true,
                },
                None => Answer {
                    output: Output::Call { name, arguments },
                    truncated: false,
                },
            }
        }
    }
}

/// Splits text into word-sized pieces that concatenate back to it (stream deltas).
pub(super) fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.is_empty() && !current.ends_with(' ') {
            pieces.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Splits JSON text into short pieces (streamed function-call arguments).
pub(super) fn split_chars(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_concatenate_back() {
        let text = "It is  21 degrees, says the mock.";
        assert_eq!(split_words(text).concat(), text);
        assert!(split_words(text).len() > 4);
        assert_eq!(split_chars("{\"a\": 1}", 3).concat(), "{\"a\": 1}");
    }

    #[test]
    fn a_limit_cuts_and_usage_counts_what_is_left() {
        let long = Output::Text("x".repeat(100));
        let cut = limit(long.clone(), Some(5));
        assert!(cut.truncated);
        assert_eq!(cut.output, Output::Text("x".repeat(20)));
        assert_eq!(cut.tokens(), 5);
        let whole = limit(long, Some(25));
        assert!(!whole.truncated);
        assert_eq!(whole.tokens(), 25);
    }
}
