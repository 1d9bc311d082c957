//! Values made from a schema, and values checked against one.
//!
//! Both language-model APIs let a client ask for a reply in a given shape:
//! OpenAI's structured outputs (`response_format: json_schema`, the Responses
//! API's `text.format`) send a JSON Schema; Gemini's `response_schema` sends
//! its OpenAPI subset (upper-case `type: "OBJECT"`, `nullable`,
//! `propertyOrdering`) and `response_json_schema` a JSON Schema. The SDKs
//! parse the reply into the caller's model (`.parsed`), so a mock that answers
//! with free text, or with JSON of the wrong shape, fails the very code it is
//! meant to test.
//!
//! [`instance`] builds a deterministic value valid against such a schema;
//! [`validate`] checks a value (a scripted reply) against one, so a script
//! that does not fit is reported instead of being sent. One module serves
//! both dialects: they differ only in spelling (`"OBJECT"` vs `"object"`,
//! `nullable: true` vs a `"null"` alternative), which [`Types`] folds
//! together.
//!
//! What is honoured: `type` (one or a list), `nullable`, `enum`, `const`,
//! `anyOf`/`oneOf`/`allOf`, `$ref` into `$defs`/`definitions` (recursive
//! schemas included: recursion stops at optional branches), `properties`,
//! `required`, `additionalProperties: false`, `items`, `prefixItems`,
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `pattern` (checked; a
//! built value that cannot meet it is an error, not a wrong answer),
//! `minimum`/`maximum` and their exclusive forms, `multipleOf`, and common
//! string `format`s. Key order follows the schema's `propertyOrdering` only
//! as far as JSON objects keep order here (they are sorted); no SDK depends
//! on it.

use std::fmt;

use serde_json::{json, Map, Value};

/// Deepest nesting followed; beyond it only what is required is built.
const MAX_DEPTH: usize = 24;

/// Why a value could not be built, or does not fit: where (`$.a.b[0]`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaError {
    /// JSON path of the offending value or sub-schema.
    pub(crate) path: String,
    /// What is wrong there.
    pub(crate) message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.path, self.message)
    }
}

impl std::error::Error for SchemaError {}

fn error(path: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// A value valid against `schema`, the same for the same `seed` (the prompt,
/// typically, so strings read as an answer to it).
pub(crate) fn instance(schema: &Value, seed: &str) -> Result<Value, SchemaError> {
    let builder = Builder { root: schema, seed };
    let value = builder.build(schema, "$", "", 0)?;
    // The builder aims at the schema; the validator has the last word.
    validate(schema, &value)?;
    Ok(value)
}

/// Checks `value` against `schema`, naming the first place it does not fit.
pub(crate) fn validate(schema: &Value, value: &Value) -> Result<(), SchemaError> {
    Checker { root: schema }.check(schema, value, "$", 0)
}

/// The JSON types a schema allows, both dialects folded together.
#[derive(Debug, Default, Clone, Copy)]
struct Types {
    object: bool,
    array: bool,
    string: bool,
    integer: bool,
    number: bool,
    boolean: bool,
    null: bool,
}

impl Types {
    /// `None` when the schema names no type (anything goes, or it is implied).
    fn of(schema: &Map<String, Value>, path: &str) -> Result<Option<Self>, SchemaError> {
        let mut types = Self::default();
        let names: Vec<&str> = match schema.get("type") {
            None => return Ok(None),
            Some(Value::String(name)) => vec![name],
            Some(Value::Array(names)) => names
                .iter()
                .map(|n| {
                    n.as_str()
                        .ok_or_else(|| error(path, format!("`type` lists {n}, not a type name")))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(error(path, format!("`type` is {other}, not a type name"))),
        };
        for name in names {
            match name.to_ascii_lowercase().as_str() {
                "object" => types.object = true,
                "array" => types.array = true,
                "string" => types.string = true,
                "integer" => types.integer = true,
                "number" => types.number = true,
                "boolean" => types.boolean = true,
                "null" => types.null = true,
                "type_unspecified" => return Ok(None),
                _ => return Err(error(path, format!("unknown type `{name}`"))),
            }
        }
        if schema.get("nullable") == Some(&Value::Bool(true)) {
            types.null = true;
        }
        Ok(Some(types))
    }

    fn admits(self, value: &Value) -> bool {
        match value {
            Value::Null => self.null,
            Value::Bool(_) => self.boolean,
            Value::Number(n) => self.number || (self.integer && is_integer(n)),
            Value::String(_) => self.string,
            Value::Array(_) => self.array,
            Value::Object(_) => self.object,
        }
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn as_object<'a>(
    schema: &'a Value,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, SchemaError> {
    match schema {
        Value::Object(map) => Ok(Some(map)),
        // JSON Schema's boolean schemas: `true` allows anything.
        Value::Bool(true) => Ok(None),
        Value::Bool(false) => Err(error(path, "the schema is `false`: nothing is valid")),
        other => Err(error(
            path,
            format!("a schema must be an object, not {other}"),
        )),
    }
}

/// Follows `$ref` (a JSON pointer into the root document).
fn resolve<'a>(root: &'a Value, schema: &'a Value, path: &str) -> Result<&'a Value, SchemaError> {
    let mut current = schema;
    for _ in 0..MAX_DEPTH {
        let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
            return Ok(current);
        };
        let pointer = reference.strip_prefix('#').ok_or_else(|| {
            error(path, format!("`$ref` {reference:?} points outside the schema; only local references (#/...) are resolved"))
        })?;
        current = root.pointer(pointer).ok_or_else(|| {
            error(
                path,
                format!("`$ref` {reference:?} names nothing in the schema"),
            )
        })?;
    }
    Err(error(
        path,
        "`$ref` chain too long (a cycle of references?)",
    ))
}

struct Builder<'a> {
    root: &'a Value,
    seed: &'a str,
}

impl Builder<'_> {
    fn build(
        &self,
        schema: &Value,
        path: &str,
        key: &str,
        depth: usize,
    ) -> Result<Value, SchemaError> {
        if depth > MAX_DEPTH * 2 {
            return Err(error(
                path,
                "the schema nests too deeply to build a value (a required recursion?)",
            ));
        }
        let schema = resolve(self.root, schema, path)?;
        let Some(map) = as_object(schema, path)? else {
            return Ok(Value::String(self.text(key, path)));
        };
        if let Some(value) = map.get("const") {
            return Ok(value.clone());
        }
        if let Some(choices) = map.get("enum") {
            let choices = choices
                .as_array()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| error(path, "`enum` must be a non-empty list"))?;
            return Ok(choices[self.pick(path, choices.len())].clone());
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(alternatives) = map.get(keyword) {
                let alternatives = alternatives
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| error(path, format!("`{keyword}` must be a non-empty list")))?;
                // Prefer a real value over `null`; beyond the depth limit, `null` ends recursion.
                let is_null = |s: &Value| {
                    resolve(self.root, s, path)
                        .ok()
                        .and_then(|s| s.get("type"))
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("null"))
                };
                let order: Vec<&Value> = if depth >= MAX_DEPTH {
                    alternatives
                        .iter()
                        .filter(|s| is_null(s))
                        .chain(alternatives.iter().filter(|s| !is_null(s)))
                        .collect()
                } else {
                    alternatives
                        .iter()
                        .filter(|s| !is_null(s))
                        .chain(alternatives.iter().filter(|s| is_null(s)))
                        .collect()
                };
                let mut last = None;
                for (i, alternative) in order.into_iter().enumerate() {
                    match self.build(
                        alternative,
                        &format!("{path}/{keyword}[{i}]"),
                        key,
                        depth + 1,
                    ) {
                        Ok(value) => return Ok(value),
                        Err(e) => last = Some(e),
                    }
                }
                return Err(last.unwrap_or_else(|| {
                    error(path, format!("no `{keyword}` alternative can be built"))
                }));
            }
        }
        if let Some(parts) = map.get("allOf") {
            return self.build(
                &merge_all_of(self.root, map, parts, path)?,
                path,
                key,
                depth + 1,
            );
        }
        let types = Types::of(map, path)?;
        let types = match types {
            Some(t) => t,
            // No type: implied by the keywords present, else a string.
            None if map.contains_key("properties") => Types {
                object: true,
                ..Types::default()
            },
            None if map.contains_key("items") || map.contains_key("prefixItems") => Types {
                array: true,
                ..Types::default()
            },
            None => Types {
                string: true,
                ..Types::default()
            },
        };
        if depth >= MAX_DEPTH && types.null {
            return Ok(Value::Null);
        }
        if types.object {
            self.object(map, path, depth)
        } else if types.array {
            self.array(map, path, key, depth)
        } else if types.string {
            self.string(map, path, key)
        } else if types.integer {
            number(map, path, true, self.pick(path, 5))
        } else if types.number {
            number(map, path, false, self.pick(path, 5))
        } else if types.boolean {
            Ok(Value::Bool(true))
        } else {
            Ok(Value::Null)
        }
    }

    fn object(
        &self,
        map: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Value, SchemaError> {
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        if let Some(properties) = map.get("properties") {
            let properties = properties
                .as_object()
                .ok_or_else(|| error(path, "`properties` must be an object"))?;
            for (name, sub) in properties {
                let needed = required.contains(&name.as_str());
                // Optional properties are filled too (a fuller answer tests more
                // of the caller), except where recursion must stop.
                if !needed && depth >= MAX_DEPTH {
                    continue;
                }
                let value = self.build(sub, &format!("{path}.{name}"), name, depth + 1)?;
                out.insert(name.clone(), value);
            }
        }
        for name in required {
            if !out.contains_key(name) {
                return Err(error(
                    path,
                    format!("`{name}` is required but has no schema in `properties`"),
                ));
            }
        }
        Ok(Value::Object(out))
    }

    fn array(
        &self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        depth: usize,
    ) -> Result<Value, SchemaError> {
        let min = map.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let max = map.get("maxItems").and_then(Value::as_u64);
        let wanted = if depth >= MAX_DEPTH { min } else { min.max(2) };
        let count = max.map_or(wanted, |max| wanted.min(max));
        if max.is_some_and(|max| max < min) {
            return Err(error(
                path,
                format!("`maxItems` {} is below `minItems` {min}", max.unwrap_or(0)),
            ));
        }
        let prefix = map.get("prefixItems").and_then(Value::as_array);
        let mut items = Vec::new();
        for i in 0..usize::try_from(count).unwrap_or(usize::MAX) {
            let item_path = format!("{path}[{i}]");
            let sub = match (prefix.and_then(|p| p.get(i)), map.get("items")) {
                (Some(sub), _) => sub,
                (None, Some(sub)) => sub,
                (None, None) => &Value::Bool(true),
            };
            items.push(self.build(sub, &item_path, key, depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn string(
        &self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Result<Value, SchemaError> {
        let format = map.get("format").and_then(Value::as_str).unwrap_or("");
        let mut text = match format {
            "date-time" => "2026-01-15T09:30:00Z".to_owned(),
            "date" => "2026-01-15".to_owned(),
            "time" => "09:30:00".to_owned(),
            "duration" => "PT30M".to_owned(),
            "email" => "lead@example.com".to_owned(),
            "hostname" => "example.com".to_owned(),
            "ipv4" => "192.0.2.10".to_owned(),
            "ipv6" => "2001:db8::10".to_owned(),
            "uri" | "url" => "https://example.com/".to_owned(),
            "uuid" => format!(
                "00000000-0000-4000-8000-{:012x}",
                self.hash(path) & 0xffff_ffff_ffff
            ),
            _ => self.text(key, path),
        };
        let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0);
        let max = map.get("maxLength").and_then(Value::as_u64);
        while (text.chars().count() as u64) < min {
            text.push('.');
        }
        if let Some(max) = max {
            text = text
                .chars()
                .take(usize::try_from(max).unwrap_or(usize::MAX))
                .collect();
        }
        Ok(Value::String(text))
    }

    /// Text that reads as an answer: the property's name and the seed.
    fn text(&self, key: &str, path: &str) -> String {
        let gist: String = self
            .seed
            .split_whitespace()
            .take(8)
            .collect::<Vec<_>>()
            .join(" ");
        match (key.is_empty(), gist.is_empty()) {
            (true, true) => format!("answer {:04x}", self.hash(path) & 0xffff),
            (true, false) => format!("answer to: {gist}"),
            (false, true) => key.replace('_', " "),
            (false, false) => format!("{} for: {gist}", key.replace('_', " ")),
        }
    }

    fn hash(&self, path: &str) -> u64 {
        // FNV-1a: stable across runs and platforms, unlike `DefaultHasher`.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.seed.bytes().chain([0]).chain(path.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    fn pick(&self, path: &str, n: usize) -> usize {
        usize::try_from(self.hash(path) % n as u64).unwrap_or(0)
    }
}

/// A number within the schema's bounds (a small one near the lower bound).
fn number(
    map: &Map<String, Value>,
    path: &str,
    integer: bool,
    spread: usize,
) -> Result<Value, SchemaError> {
    let get = |k: &str| map.get(k).and_then(Value::as_f64);
    let mut low = get("minimum");
    if let Some(x) = get("exclusiveMinimum") {
        let next = if integer { x.floor() + 1.0 } else { x + 0.5 };
        low = Some(low.map_or(next, |l| l.max(next)));
    }
    let mut high = get("maximum");
    if let Some(x) = get("exclusiveMaximum") {
        let below = if integer { x.ceil() - 1.0 } else { x - 0.5 };
        high = Some(high.map_or(below, |h| h.min(below)));
    }
    let step = get("multipleOf").filter(|m| *m > 0.0);
    let spread = spread as f64;
    let mut value = match (low, high) {
        (Some(l), Some(h)) => (l + spread).min(h),
        (Some(l), None) => l + spread,
        (None, Some(h)) => (h - spread).min(1.0 + spread),
        (None, None) => 1.0 + spread,
    };
    if !integer && low.is_none() && high.is_none() {
        value += 0.5;
    }
    if integer {
        value = value.ceil();
    }
    if let Some(step) = step {
        value = (value / step).ceil() * step;
    }
    if low.is_some_and(|l| value < l) || high.is_some_and(|h| value > h) {
        return Err(error(path, "no number satisfies the schema's bounds"));
    }
    if integer {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "an integral value within the schema's bounds"
        )]
        return Ok(json!(value as i64));
    }
    Ok(json!(value))
}

/// `allOf` folded into one schema: the union of properties and required names.
fn merge_all_of(
    root: &Value,
    base: &Map<String, Value>,
    parts: &Value,
    path: &str,
) -> Result<Value, SchemaError> {
    let parts = parts
        .as_array()
        .ok_or_else(|| error(path, "`allOf` must be a list"))?;
    let mut merged = base.clone();
    merged.remove("allOf");
    for part in parts {
        let part = resolve(root, part, path)?;
        let Some(part) = as_object(part, path)? else {
            continue;
        };
        for (k, v) in part {
            match (k.as_str(), merged.get_mut(k)) {
                ("properties", Some(Value::Object(existing))) => {
                    if let Value::Object(more) = v {
                        existing.extend(more.clone());
                    }
                }
                ("required", Some(Value::Array(existing))) => {
                    if let Value::Array(more) = v {
                        existing.extend(more.iter().cloned());
                    }
                }
                _ => {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(Value::Object(merged))
}

struct Checker<'a> {
    root: &'a Value,
}

impl Checker<'_> {
    fn check(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), SchemaError> {
        if depth > MAX_DEPTH * 4 {
            return Err(error(path, "the value nests too deeply to check"));
        }
        let schema = resolve(self.root, schema, path)?;
        let Some(map) = as_object(schema, path)? else {
            return Ok(());
        };
        if let Some(expected) = map.get("const") {
            if value != expected {
                return Err(error(path, format!("expected {expected}, found {value}")));
            }
        }
        if let Some(choices) = map.get("enum").and_then(Value::as_array) {
            if !choices.contains(value) {
                return Err(error(
                    path,
                    format!("{value} is not one of {}", Value::Array(choices.clone())),
                ));
            }
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(alternatives) = map.get(keyword).and_then(Value::as_array) {
                let mut first = None;
                let fits =
                    alternatives
                        .iter()
                        .any(|s| match self.check(s, value, path, depth + 1) {
                            Ok(()) => true,
                            Err(e) => {
                                first.get_or_insert(e);
                                false
                            }
                        });
                if !fits {
                    let why = first.map_or_else(String::new, |e| format!(" (first: {e})"));
                    return Err(error(
                        path,
                        format!("fits none of the `{keyword}` alternatives{why}"),
                    ));
                }
            }
        }
        if let Some(parts) = map.get("allOf").and_then(Value::as_array) {
            for part in parts {
                self.check(part, value, path, depth + 1)?;
            }
        }
        if let Some(types) = Types::of(map, path)? {
            if !types.admits(value) {
                return Err(error(
                    path,
                    format!("expected {}, found {}", describe(map), kind(value)),
                ));
            }
        }
        match value {
            Value::Object(object) => self.object(map, object, path, depth),
            Value::Array(items) => self.array(map, items, path, depth),
            Value::String(text) => string(map, text, path),
            Value::Number(n) => bounds(map, n, path),
            Value::Bool(_) | Value::Null => Ok(()),
        }
    }

    fn object(
        &self,
        map: &Map<String, Value>,
        object: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<(), SchemaError> {
        let properties = map.get("properties").and_then(Value::as_object);
        for name in map
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = name.as_str() {
                if !object.contains_key(name) {
                    return Err(error(path, format!("`{name}` is required but missing")));
                }
            }
        }
        for (name, value) in object {
            let sub_path = format!("{path}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => self.check(sub, value, &sub_path, depth + 1)?,
                None => match map.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(error(
                            path,
                            format!("`{name}` is not a property the schema allows"),
                        ))
                    }
                    Some(extra @ Value::Object(_)) => {
                        self.check(extra, value, &sub_path, depth + 1)?
                    }
                    _ => {}
                },
            }
        }
        Ok(())
    }

    fn array(
        &self,
        map: &Map<String, Value>,
        items: &[Value],
        path: &str,
        depth: usize,
    ) -> Result<(), SchemaError> {
        let n = items.len() as u64;
        if let Some(min) = map.get("minItems").and_then(Value::as_u64) {
            if n < min {
                return Err(error(path, format!("{n} items, at least {min} wanted")));
            }
        }
        if let Some(max) = map.get("maxItems").and_then(Value::as_u64) {
            if n > max {
                return Err(error(path, format!("{n} items, at most {max} allowed")));
            }
        }
        let prefix = map.get("prefixItems").and_then(Value::as_array);
        for (i, item) in items.iter().enumerate() {
            let sub = prefix.and_then(|p| p.get(i)).or_else(|| map.get("items"));
            if let Some(sub) = sub {
                self.check(sub, item, &format!("{path}[{i}]"), depth + 1)?;
            }
        }
        Ok(())
    }
}

fn string(map: &Map<String, Value>, text: &str, path: &str) -> Result<(), SchemaError> {
    let n = text.chars().count() as u64;
    if let Some(min) = map.get("minLength").and_then(Value::as_u64) {
        if n < min {
            return Err(error(
                path,
                format!("{n} characters, at least {min} wanted"),
            ));
        }
    }
    if let Some(max) = map.get("maxLength").and_then(Value::as_u64) {
        if n > max {
            return Err(error(
                path,
                format!("{n} characters, at most {max} allowed"),
            ));
        }
    }
    if let Some(pattern) = map.get("pattern").and_then(Value::as_str) {
        let re = regex::Regex::new(pattern).map_err(|e| {
            error(
                path,
                format!("`pattern` {pattern:?} is not a regular expression this mock reads: {e}"),
            )
        })?;
        if !re.is_match(text) {
            return Err(error(
                path,
                format!("{text:?} does not match the pattern {pattern:?}"),
            ));
        }
    }
    Ok(())
}

fn bounds(map: &Map<String, Value>, n: &serde_json::Number, path: &str) -> Result<(), SchemaError> {
    let x = n.as_f64().unwrap_or(0.0);
    let get = |k: &str| map.get(k).and_then(Value::as_f64);
    let fail = |what: String| Err(error(path, format!("{n} is {what}")));
    if let Some(min) = get("minimum").filter(|m| x < *m) {
        return fail(format!("below the minimum {min}"));
    }
    if let Some(max) = get("maximum").filter(|m| x > *m) {
        return fail(format!("above the maximum {max}"));
    }
    if let Some(min) = get("exclusiveMinimum").filter(|m| x <= *m) {
        return fail(format!("not above the exclusive minimum {min}"));
    }
    if let Some(max) = get("exclusiveMaximum").filter(|m| x >= *m) {
        return fail(format!("not below the exclusive maximum {max}"));
    }
    if let Some(step) = get("multipleOf").filter(|m| *m > 0.0) {
        let ratio = x / step;
        if (ratio - ratio.round()).abs() > 1e-9 {
            return fail(format!("not a multiple of {step}"));
        }
    }
    Ok(())
}

fn describe(map: &Map<String, Value>) -> String {
    let base = match map.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "a value".to_owned(),
    };
    if map.get("nullable") == Some(&Value::Bool(true)) {
        format!("{base} or null")
    } else {
        base
    }
}

/// A value's JSON type in words ("an object"), for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `openai.lib._pydantic.to_strict_json_schema` sends for a lead with
    /// a nested contact list, an enum and an optional field.
    fn strict_lead() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "score", "stage", "contacts", "note"],
            "properties": {
                "name": {"type": "string", "title": "Name"},
                "score": {"type": "integer", "minimum": 0, "maximum": 100},
                "stage": {"$ref": "#/$defs/Stage"},
                "contacts": {"type": "array", "items": {"$ref": "#/$defs/Contact"}},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}
            },
            "$defs": {
                "Stage": {"type": "string", "enum": ["new", "qualified", "won"]},
                "Contact": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["email", "primary"],
                    "properties": {
                        "email": {"type": "string", "format": "email"},
                        "primary": {"type": "boolean"}
                    }
                }
            }
        })
    }

    #[test]
    fn builds_a_valid_value_from_a_strict_json_schema() {
        let schema = strict_lead();
        let value = instance(&schema, "qualify the lead from Acme").unwrap();
        assert!(value["name"].as_str().unwrap().contains("Acme"), "{value}");
        assert!(["new", "qualified", "won"].contains(&value["stage"].as_str().unwrap()));
        assert!((0..=100).contains(&value["score"].as_i64().unwrap()));
        assert_eq!(value["contacts"].as_array().unwrap().len(), 2);
        assert!(
            value["note"].is_string(),
            "a real value is preferred over null"
        );
        validate(&schema, &value).unwrap();
        assert_eq!(
            value,
            instance(&schema, "qualify the lead from Acme").unwrap(),
            "deterministic"
        );
    }

    #[test]
    fn builds_from_geminis_openapi_subset() {
        let schema = json!({
            "type": "OBJECT",
            "properties": {
                "intent": {"type": "STRING", "enum": ["create_lead", "call"]},
                "amount": {"type": "NUMBER", "nullable": true, "minimum": 10},
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 1}
            },
            "required": ["intent"],
            "propertyOrdering": ["intent", "amount", "tags"]
        });
        let value = instance(&schema, "").unwrap();
        assert!(value["amount"].as_f64().unwrap() >= 10.0);
        assert_eq!(value["tags"].as_array().unwrap().len(), 1);
        validate(&schema, &json!({"intent": "call", "amount": null})).unwrap();
    }

    #[test]
    fn recursive_schemas_end() {
        let schema = json!({
            "$defs": {"Node": {
                "type": "object",
                "required": ["label", "children"],
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
                }
            }},
            "$ref": "#/$defs/Node"
        });
        let value = instance(&schema, "tree").unwrap();
        validate(&schema, &value).unwrap();
    }

    #[test]
    fn misfits_are_named_with_their_path() {
        let schema = strict_lead();
        let mut value = instance(&schema, "x").unwrap();
        value["contacts"][1]["primary"] = json!("yes");
        let e = validate(&schema, &value).unwrap_err();
        assert_eq!(e.path, "$.contacts[1].primary");
        assert_eq!(e.message, "expected boolean, found a string");

        value = instance(&schema, "x").unwrap();
        value["extra"] = json!(1);
        assert_eq!(
            validate(&schema, &value).unwrap_err().to_string(),
            "at $: `extra` is not a property the schema allows"
        );
        value = instance(&schema, "x").unwrap();
        value["stage"] = json!("lost");
        assert!(validate(&schema, &value)
            .unwrap_err()
            .message
            .contains("not one of"));
        value.as_object_mut().unwrap().remove("name");
        assert_eq!(
            validate(&schema, &value).unwrap_err().message,
            "`name` is required but missing"
        );
    }

    #[test]
    fn unsatisfiable_schemas_are_errors_not_wrong_answers() {
        let e = instance(&json!({"type": "string", "pattern": "^[0-9]{5}$"}), "zip").unwrap_err();
        assert!(e.message.contains("does not match the pattern"), "{e}");
        let e = instance(&json!({"type": "integer", "minimum": 5, "maximum": 4}), "").unwrap_err();
        assert!(e.message.contains("bounds"), "{e}");
        let e = instance(&json!({"$ref": "#/$defs/Missing"}), "").unwrap_err();
        assert!(e.message.contains("names nothing"), "{e}");
        let e = instance(&json!({"type": "thing"}), "").unwrap_err();
        assert_eq!(e.to_string(), "at $: unknown type `thing`");
    }
}
