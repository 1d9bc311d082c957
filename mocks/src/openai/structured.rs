//! Structured outputs: `response_format: {type: json_schema}` (chat) and
//! `text.format: {type: json_schema}` (Responses API).
//!
//! The SDKs' `parse` helpers send the caller's model as a strict JSON Schema
//! and parse the reply back into it, so the answer must be JSON valid against
//! that schema or the code under test fails for the mock's sake. The answer
//! is a script rule's `json` value, checked against the schema (a mismatch is
//! an error naming the rule: a test author must hear that their fixture is
//! wrong, not get an answer the real model could never give), or else a value
//! built from the schema by [`crate::schema`].
//!
//! `strict: true` schemas are held to the rules the API enforces before any
//! model runs — every object closed with `additionalProperties: false`, every
//! property listed in `required` — with the API's own error text, so a
//! hand-written schema that the real service would refuse is refused here too.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{error_response, invalid};
use crate::schema;
use crate::script::{Prompt, Script, StructuredReply};

/// Which API the format came in: decides parameter names and error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `response_format.json_schema` of chat completions.
    Chat,
    /// `text.format` of the Responses API.
    Responses,
}

impl Dialect {
    fn param(self, field: &str) -> String {
        match self {
            Self::Chat => format!("response_format.json_schema.{field}"),
            Self::Responses => format!("text.format.{field}"),
        }
    }

    /// A 400 about the schema itself, as each endpoint words it.
    fn invalid_schema(self, name: &str, problem: &str) -> Response {
        let message = format!("Invalid schema for response_format '{name}': {problem}");
        match self {
            Self::Chat => invalid(&message, "response_format", None),
            Self::Responses => invalid(&message, "text.format.schema", Some("invalid_json_schema")),
        }
    }
}

/// A requested JSON Schema format.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct JsonSchema {
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) schema: Value,
    pub(super) strict: bool,
    pub(super) dialect: Dialect,
}

impl JsonSchema {
    /// Reads the format object (`response_format.json_schema` for chat, `text.format` for responses).
    #[expect(
        clippy::result_large_err,
        reason = "an axum Response is the natural rejection of a handler helper"
    )]
    pub(super) fn parse(format: &Value, dialect: Dialect) -> Result<Self, Response> {
        let Some(name) = format.get("name").and_then(Value::as_str) else {
            let param = dialect.param("name");
            return Err(invalid(
                &format!("Missing required parameter: '{param}'."),
                &param,
                Some("missing_required_parameter"),
            ));
        };
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            let param = dialect.param("name");
            return Err(invalid(
                &format!("Invalid '{param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."),
                &param,
                Some("invalid_value"),
            ));
        }
        let schema = match format.get("schema") {
            None | Some(Value::Null) => json!({ "type": "object" }),
            Some(Value::Object(s)) => Value::Object(s.clone()),
            Some(_) => {
                let param = dialect.param("schema");
                return Err(invalid(
                    &format!("Invalid type for '{param}': expected an object."),
                    &param,
                    Some("invalid_type"),
                ));
            }
        };
        let strict = format.get("strict").and_then(Value::as_bool) == Some(true);
        if let Some(kind) = schema
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| *t != "object")
        {
            return Err(dialect.invalid_schema(
                name,
                &format!(
                    "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{kind}\"'."
                ),
            ));
        }
        if strict {
            if let Err(problem) = check_strict(&schema, &mut Vec::new()) {
                return Err(dialect.invalid_schema(name, &problem));
            }
        }
        Ok(Self {
            name: name.to_owned(),
            description: format
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            schema,
            strict,
            dialect,
        })
    }

    /// The format as a Responses object echoes it.
    pub(super) fn echo(&self) -> Value {
        json!({
            "type": "json_schema", "name": self.name, "description": self.description,
            "schema": self.schema, "strict": self.strict
        })
    }

    /// The structured answer: the script's, checked, or one built from the schema.
    /// `Ok(Err((name, arguments)))` when a function-call rule answers instead.
    #[expect(
        clippy::result_large_err,
        reason = "an axum Response is the natural rejection of a handler helper"
    )]
    pub(super) fn answer(
        &self,
        script: &Script,
        prompt: &Prompt,
        calls_allowed: bool,
    ) -> Result<Result<String, (String, Value)>, Response> {
        match script.answer_structured(prompt) {
            Some(StructuredReply::FunctionCall { name, arguments }) if calls_allowed => {
                Ok(Err((name, arguments)))
            }
            Some(StructuredReply::Json { value, rule }) => {
                match schema::validate(&self.schema, &value) {
                    Ok(()) => Ok(Ok(value.to_string())),
                    Err(e) => Err(mock_error("mock_script_mismatch", &format!(
                        "tekup-mocks: script rule `{rule}` replies with JSON that does not fit the response schema '{}' of this request ({e}); fix the rule's `json` reply or its `when`",
                        self.name
                    ))),
                }
            }
            Some(StructuredReply::FunctionCall { .. }) | None => {
                match schema::instance(&self.schema, &prompt.user) {
                    Ok(value) => Ok(Ok(value.to_string())),
                    Err(e) => Err(mock_error("mock_schema_unsupported", &format!(
                        "tekup-mocks cannot build a value for the response schema '{}' of this request ({e}); script a `json` reply for this prompt",
                        self.name
                    ))),
                }
            }
        }
    }
}

/// A 500 the SDKs do not retry (`x-should-retry: false`): the fixture is
/// wrong, or the mock cannot build what the schema asks; asking again cannot help.
fn mock_error(code: &str, message: &str) -> Response {
    let mut response = error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        message,
        "server_error",
        Value::Null,
        Value::from(code),
    );
    response
        .headers_mut()
        .insert("x-should-retry", HeaderValue::from_static("false"));
    response
}

/// The API's strict-mode rules: every object closes `additionalProperties`
/// and requires all its properties. `context` is the path, shown as the API
/// shows it (a Python tuple).
fn check_strict(schema: &Value, context: &mut Vec<String>) -> Result<(), String> {
    let Some(map) = schema.as_object() else {
        return Ok(());
    };
    let is_object = map.contains_key("properties")
        || match map.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
            _ => false,
        };
    if is_object {
        if map.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err(format!(
                "In context={}, 'additionalProperties' is required to be supplied and to be false.",
                tuple(context)
            ));
        }
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(Value::Object(properties)) = map.get("properties") {
            if let Some(missing) = properties.keys().find(|k| !required.contains(&k.as_str())) {
                return Err(format!(
                    "In context={}, 'required' is required to be supplied and to be an array including every key in properties. Missing '{missing}'.",
                    tuple(context)
                ));
            }
        }
    }
    for keyword in ["properties", "$defs", "definitions"] {
        if let Some(Value::Object(children)) = map.get(keyword) {
            walk(children, keyword, context)?;
        }
    }
    if let Some(items) = map.get("items") {
        context.push("items".into());
        check_strict(items, context)?;
        context.pop();
    }
    for keyword in ["anyOf", "allOf"] {
        if let Some(Value::Array(alternatives)) = map.get(keyword) {
            for (i, alternative) in alternatives.iter().enumerate() {
                context.push(keyword.into());
                context.push(i.to_string());
                check_strict(alternative, context)?;
                context.pop();
                context.pop();
            }
        }
    }
    Ok(())
}

fn walk(
    children: &Map<String, Value>,
    keyword: &str,
    context: &mut Vec<String>,
) -> Result<(), String> {
    for (name, child) in children {
        context.push(keyword.into());
        context.push(name.clone());
        check_strict(child, context)?;
        context.pop();
        context.pop();
    }
    Ok(())
}

/// `()`, `('items',)`, `('properties', 'address')`: Python's tuple repr.
fn tuple(parts: &[String]) -> String {
    match parts {
        [] => "()".into(),
        [one] => format!("('{one}',)"),
        many => format!(
            "({})",
            many.iter()
                .map(|p| if p.chars().all(|c| c.is_ascii_digit()) {
                    p.clone()
                } else {
                    format!("'{p}'")
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_schemas_must_close_and_require_every_object() {
        let closed = json!({"type": "object", "additionalProperties": false, "required": ["a"],
            "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "object",
            "properties": {"b": {"type": "string"}}, "required": ["b"]}}});
        assert_eq!(
            check_strict(&closed, &mut Vec::new()).unwrap_err(),
            "In context=('$defs', 'A'), 'additionalProperties' is required to be supplied and to be false."
        );
        let open = json!({"type": "object", "additionalProperties": false, "required": [],
            "properties": {"a": {"type": "string"}}});
        assert_eq!(
            check_strict(&open, &mut Vec::new()).unwrap_err(),
            "In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing 'a'."
        );
        let items = json!({"type": "array", "items": {"type": "object", "properties": {}}});
        assert!(check_strict(&items, &mut Vec::new())
            .unwrap_err()
            .starts_with("In context=('items',),"));
    }
}
