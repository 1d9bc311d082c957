//! The JSON Schema of the scenario format (`tekup-harness schema`), for
//! editors. The checker in this module is the authority: it also checks what
//! a schema cannot (references, tenants, connections, unique names).

use serde_json::{json, Value};

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

/// The `mock` step: its five actions, each fault kind of the mocks, and
/// the `expect-none` window and `clear` parts.
fn mock_schema(text: &Value, duration: &Value, status: &Value) -> Value {
    let mock_request = obj(&[], json!({ "method": text, "path": text, "json": {} }));
    let times = json!({ "type": "integer", "minimum": 0 });
    let flag = |what: &str| json!({ "const": true, "description": what });
    let part = json!({ "enum": ["journal", "faults", "expectations"] });
    one_of_keys(&[
        (
            "expect",
            obj(
                &[],
                json!({ "expect": text, "request": mock_request, "times": times,
                        "answered": obj(&[], json!({
                            "status": status,
                            "fault": { "enum": ["latency", "status", "rate-limit", "malformed",
                                                "truncated", "reset", "stall"] } })) }),
            ),
        ),
        (
            "expect-none",
            obj(
                &["for"],
                json!({ "expect-none": { "description": "the mock that must receive no matching call", "type": text["type"] },
                        "request": mock_request,
                        "for": { "description": "the window, counted from the step's start; calls journaled before it do not count",
                                 "type": "string", "pattern": duration["pattern"] } }),
            ),
        ),
        (
            "set",
            obj(
                &["respond"],
                json!({ "set": text, "request": mock_request,
            "respond": obj(&[], json!({ "status": status, "json": {} })) }),
            ),
        ),
        (
            "fault",
            obj(
                &[],
                json!({ "fault": text, "method": text, "path": text, "status": status,
                        "json": { "description": "the body of a `status` fault instead of the API's error shape" },
                        "delay": duration, "retry-after": duration,
                        "stall": { "description": "send nothing for this long, or `forever`",
                                   "anyOf": [duration, { "const": "forever" }] },
                        "reset": flag("reset the connection without answering"),
                        "malformed": flag("answer with a body that does not parse"),
                        "truncated": flag("announce the whole body, send half, close"),
                        "times": times,
                        "ratio": { "type": "number", "minimum": 0, "maximum": 1 } }),
            ),
        ),
        (
            "clear",
            obj(
                &[],
                json!({ "clear": { "description": "the mock whose journal, faults and expectations to empty", "type": text["type"] },
                        "only": { "anyOf": [part, { "type": "array", "items": part, "minItems": 1 }] } }),
            ),
        ),
    ])
}

/// The schema, as a JSON value.
pub fn schema() -> Value {
    let text = json!({ "type": ["string", "number", "boolean"] });
    let duration = json!({ "type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$", "examples": ["500ms", "30s", "1m30s"] });
    let headers = json!({ "type": "object", "additionalProperties": { "$ref": "#/$defs/text" } });
    // A status may be a data-driven row's value, `"${status}"`.
    let status = json!({ "anyOf": [
        { "type": "integer", "minimum": 100, "maximum": 599 },
        { "type": "string", "pattern": "^\\$\\{[A-Za-z_][A-Za-z0-9_-]*\\}$" },
    ] });
    let pairs = json!({ "type": "object", "additionalProperties": { "oneOf": [text, { "type": "array", "items": text }] } });
    let part = json!({ "oneOf": [text, { "type": "object", "additionalProperties": false,
        "properties": { "file": text, "text": text, "filename": text, "content-type": text } }] });
    let request = obj(
        &["method", "path"],
        json!({
            "method": text, "path": text, "json": {}, "headers": headers,
            "query": { "description": "Pairs appended URL-encoded to `path`; a list repeats the name.", "allOf": [pairs] },
            "cookies": { "type": "object", "description": "Sent as one `cookie` header.", "additionalProperties": text },
            "form": { "description": "An application/x-www-form-urlencoded body (one body per request).", "allOf": [pairs] },
            "multipart": { "type": "object", "description": "A multipart/form-data body: a part is text, or { file (relative to the scenario file) | text, filename, content-type }.",
                "additionalProperties": part },
            "body": { "type": "string", "description": "A raw body; needs `content-type`." },
            "content-type": text,
        }),
    );
    // `service` may come from `defaults`; `tenant: null` takes none of them.
    let or_none = json!({ "type": ["string", "number", "boolean", "null"] });
    let expected = json!({ "$ref": "#/$defs/expected" });
    let operator = json!({ "type": "object", "minProperties": 1,
        "propertyNames": { "enum": ["$regex", "$gt", "$gte", "$lt", "$lte", "$len", "$type", "$one-of"] } });
    let header_expect =
        json!({ "type": "object", "additionalProperties": { "anyOf": [text, operator] } });
    let http = obj(
        &["request"],
        json!({
            "service": text, "tenant": or_none, "app": or_none,
            "request": request,
            "expect": obj(&[], json!({ "status": status, "headers": header_expect, "json": expected, "json-schema": {},
                "body-contains": { "oneOf": [text, { "type": "array", "items": text }] } })),
            "save": { "type": "object", "additionalProperties": { "type": "string", "pattern": "^\\$" } },
        }),
    );
    let ws = one_of_keys(&[
        (
            "connect",
            obj(
                &["tenant", "app"],
                json!({ "connect": text, "tenant": text, "app": text }),
            ),
        ),
        (
            "expect",
            obj(
                &["event", "within"],
                json!({ "expect": text, "event": text, "within": duration, "data": expected, "envelope": expected }),
            ),
        ),
        (
            "expect-none",
            obj(
                &["for"],
                json!({ "expect-none": text, "event": text, "for": duration }),
            ),
        ),
        (
            "send",
            obj(
                &["event"],
                json!({ "send": text, "event": text, "data": {} }),
            ),
        ),
    ]);
    let sql_props = |who: &str, v: Value| {
        let mut p = json!({ "query": text, "args": { "type": "array" }, "expect": { "type": "array", "items": { "type": "array" } }, "error": text });
        p[who] = v;
        obj(&["query"], p)
    };
    let sql = one_of_keys(&[
        ("tenant", sql_props("tenant", text.clone())),
        ("admin", sql_props("admin", json!({ "const": true }))),
    ]);
    let redis = one_of_keys(&[
        (
            "queue",
            obj(
                &["size"],
                json!({ "queue": text, "dead-letter": { "type": "boolean" }, "size": { "type": "integer", "minimum": 0 } }),
            ),
        ),
        (
            "key",
            obj(
                &[],
                json!({ "key": text, "exists": { "type": "boolean" }, "value": text }),
            ),
        ),
        (
            "enqueue",
            obj(
                &["kind", "tenant", "payload"],
                json!({ "enqueue": { "enum": crate::contract::active().queue_names() },
                        "kind": text, "tenant": text, "payload": { "type": "object" } }),
            ),
        ),
    ]);
    let mock = mock_schema(&text, &duration, &status);
    let chaos = one_of_keys(&[
        ("kill", obj(&[], json!({ "kill": text }))),
        ("pause", obj(&[], json!({ "pause": text, "for": duration }))),
        ("restart", obj(&[], json!({ "restart": text }))),
        ("heal", obj(&[], json!({ "heal": text }))),
        (
            "toxic",
            obj(
                &["link"],
                json!({ "toxic": { "enum": crate::scenario::Toxic::NAMES }, "link": text,
                        "stream": { "enum": ["upstream", "downstream"] },
                        "toxicity": { "type": "number", "minimum": 0, "maximum": 1 }, "for": duration,
                        "latency": duration, "jitter": duration, "rate": { "type": "integer", "minimum": 0 },
                        "delay": duration, "timeout": duration,
                        "average-size": { "type": "integer", "minimum": 0 },
                        "size-variation": { "type": "integer", "minimum": 0 },
                        "bytes": { "type": "integer", "minimum": 0 } }),
            ),
        ),
    ]);
    let kinds = json!({
        "http": { "$ref": "#/$defs/http" }, "ws": { "$ref": "#/$defs/ws" },
        "sql": { "$ref": "#/$defs/sql" }, "redis": { "$ref": "#/$defs/redis" },
        "mock": { "$ref": "#/$defs/mock" },
    });
    let label = json!({ "type": "string", "minLength": 1, "pattern": "^[^\\n]*$" });
    let because = json!({ "type": "string", "minLength": 1,
        "description": "Printed with the step's failure: why the check matters." });
    let eventually = {
        let mut props = kinds.clone();
        props["within"] = duration.clone();
        props["holds-for"] = json!({ "$ref": "#/$defs/duration",
            "description": "Once the step passes, it must keep passing for this long (checked again and again)." });
        let mut condition = kinds.clone();
        condition["name"] = label;
        props["fail-fast-on"] = json!({ "type": "object", "additionalProperties": false,
            "minProperties": 1, "maxProperties": 2, "properties": condition,
            "description": "A known-bad state: when this step passes while the retried one fails, the retrying stops with a failure." });
        json!({ "type": "object", "additionalProperties": false, "required": ["within"],
                "minProperties": 2, "maxProperties": 4, "properties": props })
    };
    let step = {
        let mut props = kinds;
        props["eventually"] = eventually;
        props["chaos"] = json!({ "$ref": "#/$defs/chaos" });
        props["sleep"] = duration.clone();
        props["timeout"] = duration.clone();
        props["name"] = json!({ "type": "string", "minLength": 1, "pattern": "^[^\\n]*$",
            "description": "What the step is for: shown in progress, failures, JUnit and HTML reports." });
        props["because"] = because;
        json!({ "type": "object", "additionalProperties": false, "minProperties": 1, "maxProperties": 4, "properties": props })
    };
    let reuse = reuse();
    let step = json!({ "anyOf": [step, { "$ref": "#/$defs/use" }] });
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
            "timeout": duration,
            "setup": steps,
            "steps": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/step" } },
            "teardown": steps,
            "examples": data_driven["examples"],
            "matrix": data_driven["matrix"],
            "skip-if": data_driven["skip-if"],
            "defaults": reuse["defaults"],
        },
        "$defs": {
            "expected": { "description": "An expected value, matched as a subset. Operators: { $regex: \"^lead_\" }, { $gt|$gte|$lt|$lte: number or RFC 3339 time }, { $len: n or { $gte: n } }, { $type: string|number|integer|boolean|null|array|object }, { $one-of: [a, b] }, { $exact: {...} or [...] }; the words $absent (key must not be there) and $any; `$$` escapes a literal `$` key or word (scenarios/README.md, Operators)." },
            "text": text, "duration": duration, "step": step, "http": http, "ws": ws, "sql": sql,
            "redis": redis, "mock": mock, "chaos": chaos,
            "use": reuse["use"], "step-file": reuse["step-file"],
        },
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
