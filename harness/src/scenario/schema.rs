//! The JSON Schema of the scenario format (`tekup-harness schema`), for
//! editors. The checker is the authority: it also checks what a schema
//! cannot (references, tenants, connections, unique names).
//!
//! The step kinds' parts come from the kinds' own modules
//! ([`super::kinds`]): each describes its keys once, as a table of [`Key`]s
//! that its decoder accepts (`read::keyed`) and this module turns into
//! schema, so a key the decoder takes is a key the schema shows, with the
//! same help.

use serde_json::{json, Value};

/// One key of a map in a scenario file: the decoder accepts it and the
/// schema describes it, from one table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    /// Listed in the schema's `required`.
    pub(crate) required: bool,
    /// The value's schema.
    pub(crate) schema: fn() -> Value,
    /// The description editors show.
    pub(crate) help: &'static str,
}

impl Key {
    pub(crate) const fn new(name: &'static str, schema: fn() -> Value) -> Key {
        Key {
            name,
            required: false,
            schema,
            help: "",
        }
    }

    pub(crate) const fn required(self) -> Key {
        Key {
            required: true,
            ..self
        }
    }

    pub(crate) const fn help(self, help: &'static str) -> Key {
        Key { help, ..self }
    }
}

/// The names of `keys`, for the decoder.
pub(crate) fn names(keys: &[Key]) -> Vec<&'static str> {
    keys.iter().map(|k| k.name).collect()
}

/// A map with exactly `keys`.
pub(crate) fn object(keys: &[Key]) -> Value {
    let mut props = serde_json::Map::new();
    for k in keys {
        let mut v = (k.schema)();
        if !k.help.is_empty() {
            // A `$ref` with siblings is fine in 2020-12; a description
            // beside it is what editors show.
            v["description"] = json!(k.help);
        }
        props.insert(k.name.to_owned(), v);
    }
    let required: Vec<&str> = keys.iter().filter(|k| k.required).map(|k| k.name).collect();
    json!({ "type": "object", "additionalProperties": false, "required": required, "properties": props })
}

/// A map that does one of several actions, each named by its key
/// (`ws: { connect: c, ... }`): one variant per action, its key required.
pub(crate) fn actions(variants: &[(&str, &[Key])]) -> Value {
    one_of_keys(
        &variants
            .iter()
            .map(|(k, keys)| (*k, object(keys)))
            .collect::<Vec<_>>(),
    )
}

/// Text (a number or boolean is taken as its text); may hold `${...}`.
pub(crate) fn text() -> Value {
    json!({ "$ref": "#/$defs/text" })
}

/// A duration: `500ms`, `30s`, `1m30s`.
pub(crate) fn duration() -> Value {
    json!({ "$ref": "#/$defs/duration" })
}

/// An HTTP status, or a data-driven row's value (`"${status}"`).
pub(crate) fn status() -> Value {
    json!({ "$ref": "#/$defs/status" })
}

/// An expected value, matched as a subset, with operators.
pub(crate) fn expected() -> Value {
    json!({ "$ref": "#/$defs/expected" })
}

/// Any JSON value (`${...}` expanded in its strings).
pub(crate) fn any() -> Value {
    json!({})
}

pub(crate) fn boolean() -> Value {
    json!({ "type": "boolean" })
}

/// A count: an integer from 0.
pub(crate) fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

/// A share: a number from 0 to 1.
pub(crate) fn share() -> Value {
    json!({ "type": "number", "minimum": 0, "maximum": 1 })
}

/// A flag that is either given as `true` or left out.
pub(crate) fn flag() -> Value {
    json!({ "const": true })
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": required, "properties": props })
}

fn one_of_keys(variants: &[(&str, Value)]) -> Value {
    json!({ "oneOf": variants.iter().map(|(k, v)| {
        // The variant's key first, then the keys the variant itself requires.
        let mut required = vec![json!(k)];
        if let Some(own) = v["required"].as_array() {
            required.extend(own.iter().filter(|r| r.as_str() != Some(k)).cloned());
        }
        let mut v = v.clone();
        v["required"] = Value::Array(required);
        v
    }).collect::<Vec<_>>() })
}

/// The schema, as a JSON value.
pub fn schema() -> Value {
    let text = json!({ "type": ["string", "number", "boolean"] });
    let duration = json!({ "type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$", "examples": ["500ms", "30s", "1m30s"] });
    // A status may be a data-driven row's value, `"${status}"`.
    let status = json!({ "anyOf": [
        { "type": "integer", "minimum": 100, "maximum": 599 },
        { "type": "string", "pattern": "^\\$\\{[A-Za-z_][A-Za-z0-9_-]*\\}$" },
    ] });
    let reuse = reuse();
    let mut defs = json!({
        "expected": { "description": "An expected value, matched as a subset. Operators: { $regex: \"^lead_\" }, { $gt|$gte|$lt|$lte: number or RFC 3339 time }, { $len: n or { $gte: n } }, { $type: string|number|integer|boolean|null|array|object }, { $one-of: [a, b] }, { $exact: {...} or [...] }; the words $absent (key must not be there) and $any; `$$` escapes a literal `$` key or word (scenarios/README.md, Operators)." },
        "text": text, "duration": duration, "status": status,
        "use": reuse["use"], "step-file": reuse["step-file"],
    });
    // A step: one kind (each kind's schema is its module's, under
    // `$defs/<kind>`), and what may stand beside it.
    let mut step = serde_json::Map::new();
    for (name, about, kind) in super::kinds::schemas() {
        let mut kind = kind;
        kind["description"] = json!(about);
        defs[name] = kind;
        step.insert(
            name.to_owned(),
            json!({ "$ref": format!("#/$defs/{name}") }),
        );
    }
    step.insert("timeout".to_owned(), json!({ "$ref": "#/$defs/duration",
        "description": "The step fails when it takes longer (its own `within`/`for` adds to it)." }));
    step.insert("name".to_owned(), json!({ "type": "string", "minLength": 1, "pattern": "^[^\\n]*$",
        "description": "What the step is for: shown in progress, failures, JUnit and HTML reports." }));
    step.insert(
        "because".to_owned(),
        json!({ "type": "string", "minLength": 1,
        "description": "Printed with the step's failure: why the check matters." }),
    );
    let step = json!({ "type": "object", "additionalProperties": false, "minProperties": 1, "maxProperties": 4, "properties": step });
    defs["step"] = json!({ "anyOf": [step, { "$ref": "#/$defs/use" }] });
    let steps = json!({ "type": "array", "items": { "$ref": "#/$defs/step" } });
    let names = json!({ "type": "array", "items": { "type": "string" } });
    let data_driven = data_driven();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tekup-harness scenario",
        "description": "A scenario file (scenarios/README.md). Strings may hold ${name}, ${env.X}, ${uuid}, ${email}, ${now}, ${now+5m} (s, m, h, d; :unix for epoch seconds), ${base64:text} (may hold references; base64url: for the URL-safe alphabet), tenant references and cross-app tokens minted at each use (${cross-app-token:iss=flow-api,aud=crm-api,sub=acme,scope=read:contacts}).",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "steps"],
        "not": { "required": ["examples", "matrix"] },
        "properties": {
            "name": { "type": "string" },
            "tags": names,
            "tenants": names,
            "vars": { "type": "object" },
            "secrets": { "type": "array", "description": "Redacted from everything the run prints or writes, also base64- and URL-encoded: names of vars or saved values, or { value: ... }.",
                "items": { "oneOf": [ { "type": "string" },
                    obj(&["value"], json!({ "value": { "type": "string", "minLength": 1 } })) ] } },
            "include": names,
            "exclusive": { "type": "boolean" },
            "own-ecosystem": { "type": "object", "additionalProperties": false, "required": ["vars"],
                "description": "Entries of the ecosystem file's [vars] set otherwise on this scenario's ecosystem of its own (process runtime); elsewhere the file's values hold.",
                "properties": { "vars": { "type": "object", "minProperties": 1,
                    "additionalProperties": { "type": ["string", "number", "boolean"] } } } },
            "timeout": { "$ref": "#/$defs/duration" },
            "setup": steps,
            "steps": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/step" } },
            "teardown": steps,
            "examples": data_driven["examples"],
            "matrix": data_driven["matrix"],
            "skip-if": data_driven["skip-if"],
            "defaults": reuse["defaults"],
        },
        "$defs": defs,
    })
}

/// `examples`, `matrix` and `skip-if`: one file as many cases, and when a
/// scenario is not run.
fn data_driven() -> Value {
    let row_key = "^[A-Za-z_][A-Za-z0-9_-]*$";
    let one_or_list = |item: Value| json!({ "oneOf": [item, { "type": "array", "items": item }] });
    json!({
        "examples": {
            "description": "One test case per row, named `name[label]`; each key of a row is `${key}` in the steps. Every row has the same keys; `label` names the case (default `key=value,...`).",
            "type": "array", "minItems": 1,
            "items": { "type": "object", "minProperties": 1,
                       "properties": { "label": { "type": "string" } },
                       "propertyNames": { "pattern": row_key } },
        },
        "matrix": {
            "description": "One test case per combination of the lists' values, named `name[key=value,...]`.",
            "type": "object", "minProperties": 1,
            "propertyNames": { "pattern": row_key },
            "additionalProperties": { "type": "array", "minItems": 1 },
        },
        "skip-if": {
            "description": "The scenario is reported as skipped, with `because`, when the runtime is one of `runtime` or the ecosystem lacks one of `lacks`.",
            "type": "object", "additionalProperties": false, "required": ["because"],
            "minProperties": 2,
            "properties": {
                "runtime": one_or_list(json!({ "enum": ["process", "docker", "external"] })),
                "lacks": one_or_list(json!({ "type": "string", "pattern": "^(database|redis|faults|links|mock:.+)$" })),
                "because": { "type": "string" },
            },
        },
    })
}

/// `use:` of a step file, `defaults:`, and the step file itself
/// (`$defs/step-file`, for editors that map `steps/*.yaml` to it).
fn reuse() -> Value {
    let text = json!({ "type": ["string", "number", "boolean"] });
    let http = json!({ "type": "object", "additionalProperties": false,
        "properties": { "service": text, "tenant": text, "app": text } });
    let block =
        json!({ "type": "object", "additionalProperties": false, "properties": { "http": http } });
    let name = json!({ "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$" });
    json!({
        "defaults": {
            "description": "What the `http` steps have in common (`service`, `tenant`, `app`), for the whole file and per block; a step's own value wins, `tenant: null` takes none.",
            "type": "object", "additionalProperties": false,
            "properties": { "http": http, "setup": block, "steps": block, "teardown": block },
        },
        "use": {
            "description": "Runs the steps of the step file `steps/NAME.yaml` (looked up from this file's directory upwards) with `with` as its parameters; the values it `returns` are saved, under their own names or as `save: { mine: returned }` says.",
            "type": "object", "additionalProperties": false, "required": ["use"],
            "properties": {
                "use": { "type": "string" },
                "with": { "type": "object", "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$" } },
                "save": { "type": "object", "additionalProperties": { "type": "string" } },
            },
        },
        "step-file": {
            "description": "A reusable step file (`scenarios/steps/NAME.yaml`): `params` (a bare name is required, `{ name: default }` optional), `defaults`, `steps`, and the saved values it `returns`.",
            "type": "object", "additionalProperties": false, "required": ["steps"],
            "properties": {
                "params": { "type": "array", "items": { "oneOf": [name,
                    { "type": "object", "minProperties": 1, "maxProperties": 1, "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$" } }] } },
                "defaults": { "type": "object", "additionalProperties": false, "properties": { "http": http } },
                "steps": { "type": "array", "items": { "$ref": "#/$defs/step" } },
                "returns": { "type": "array", "items": name },
            },
        },
    })
}
