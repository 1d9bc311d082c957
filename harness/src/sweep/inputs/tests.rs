//! The generator on a small hand-written document: which cases it makes,
//! what it expects of each, and the requests they become.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cases::{generate, Base, Case, Expect, Mutation};
use super::fields::{FieldPath, Seg};
use super::send::render;
use crate::sweep::{Operations, Size};

fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": { "title": "crm-api", "version": "1" },
        "paths": {
            "/contacts": {
                "post": {
                    "operationId": "createContact",
                    "security": [{ "tenantKey": ["write:contacts"] }],
                    "x-tekup-store": "crm.contacts",
                    "requestBody": { "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/NewContact" },
                        "example": { "email": "ada@example.com", "firstName": "Ada",
                                     "description": "met at a fair" } } } },
                    "responses": { "201": {}, "422": {} }
                },
                "get": {
                    "operationId": "listContacts",
                    "security": [{ "tenantKey": ["read:contacts"] }],
                    "parameters": [
                        { "name": "limit", "in": "query",
                          "schema": { "type": "integer", "minimum": 1, "maximum": 500 } },
                        { "name": "leadId", "in": "query", "x-tekup-ref": "flow-api:createLead",
                          "schema": { "type": "string", "format": "uuid" } }
                    ],
                    "responses": { "200": {} }
                }
            },
            "/contacts/{id}/leads": { "post": {
                "operationId": "associateLead",
                "security": [{ "tenantKey": ["write:contacts"] }],
                "parameters": [{ "name": "id", "in": "path", "required": true,
                    "x-tekup-ref": "crm-api:createContact",
                    "schema": { "type": "string", "format": "uuid" } }],
                "requestBody": { "content": { "application/json": {
                    "schema": { "type": "object", "additionalProperties": false,
                        "required": ["leadId"],
                        "properties": { "leadId": { "type": "string", "format": "uuid",
                            "x-tekup-ref": "flow-api:createLead" } } },
                    "example": { "leadId": "7f1d2c1e-0000-4000-8000-000000000001" } } } },
                "responses": { "201": {} }
            }}
        },
        "components": { "schemas": { "NewContact": {
            "type": "object", "additionalProperties": false, "required": ["email"],
            "properties": {
                "email": { "type": "string", "format": "email", "maxLength": 254 },
                "firstName": { "type": ["string", "null"], "maxLength": 200 },
                "description": { "type": ["string", "null"], "maxLength": 2000 },
                "amount": { "type": "integer", "minimum": 0 }
            } } } }
    })
}

fn operations() -> Operations {
    let mut ops = Operations::default();
    ops.add(document()).unwrap();
    ops
}

fn case<'a>(cases: &'a [Case], label: &str) -> &'a Case {
    cases.iter().find(|c| c.label == label).unwrap_or_else(|| {
        let labels: Vec<&str> = cases.iter().map(|c| c.label.as_str()).collect();
        panic!("no case `{label}` among {labels:#?}")
    })
}

fn refused(c: &Case) -> bool {
    matches!(c.expect, Expect::Refused(_))
}

#[test]
fn each_field_gets_each_family_with_what_the_schema_and_the_rules_expect() {
    let ops = operations();
    let op = ops.find("crm-api", "createContact").unwrap();
    let base = Base {
        body: op.body_example.clone(),
        ..Base::default()
    };
    let cases = generate(op, &base, &BTreeMap::new(), Size::Bounded).unwrap();

    assert!(refused(case(&cases, "email: missing (left out)")));
    assert_eq!(
        case(&cases, "firstName: missing (left out)").expect,
        Expect::Either
    );
    assert_eq!(
        case(&cases, "firstName: null (null)").expect,
        Expect::Either
    );
    assert!(refused(case(&cases, "email: null (null)")));
    assert!(refused(case(&cases, "firstName: wrong type (a number)")));
    // Control characters are refused everywhere, bidi overrides in names only.
    assert!(refused(case(
        &cases,
        "firstName: control characters (a NUL byte)"
    )));
    assert!(refused(case(
        &cases,
        "description: control characters (a NUL byte)"
    )));
    assert!(refused(case(&cases, "firstName: bidi marks (U+202E)")));
    assert_eq!(
        case(&cases, "description: bidi marks (U+202E)").expect,
        Expect::Either
    );
    // HTML is text like any other in a name, not in an email's local part.
    assert_eq!(
        case(&cases, "firstName: HTML (a script tag)").expect,
        Expect::Either
    );
    let html_email = case(&cases, "email: HTML (a script tag)");
    assert!(refused(html_email));
    assert_eq!(
        html_email.mutation,
        Mutation::Field(
            FieldPath(vec![Seg::Key("email".into())]),
            Some(json!("<script>alert(1)</script>@example.com"))
        )
    );
    // maxLength + 1 when the schema states one.
    match &case(&cases, "firstName: oversized (too long)").mutation {
        Mutation::Field(_, Some(Value::String(s))) => assert_eq!(s.len(), 201),
        other => panic!("{other:?}"),
    }
    assert!(refused(case(&cases, "firstName: oversized (too long)")));
    assert!(refused(case(&cases, "firstName: lone surrogate (\\ud800)")));
    assert!(refused(case(&cases, "amount: boundary (-1)")));
    assert!(refused(case(&cases, "amount: fraction (1.5)")));
    assert!(refused(case(&cases, "amount: overflow (1e309)")));
    assert_eq!(
        case(&cases, "amount: huge (i64::MAX)").expect,
        Expect::Either
    );
    assert!(refused(case(&cases, "unexpectedField: an unknown field")));
    assert!(refused(case(&cases, "body: malformed JSON")));
    assert!(refused(case(&cases, "body: content type text/plain")));

    // One value per family at the bounded size, every value at the full size.
    let full = generate(op, &base, &BTreeMap::new(), Size::Full).unwrap();
    assert!(!cases
        .iter()
        .any(|c| c.label == "firstName: control characters (U+0001)"));
    assert!(refused(case(
        &full,
        "firstName: control characters (U+0001)"
    )));
    assert!(refused(case(&full, "body: an array")));
    assert!(full.len() > cases.len());
}

#[test]
fn references_get_another_tenants_id_and_parameters_their_bounds() {
    let ops = operations();
    let foreign = BTreeMap::from([
        ("flow-api:createLead".to_owned(), "b-lead".to_owned()),
        ("crm-api:createContact".to_owned(), "b-contact".to_owned()),
    ]);
    let op = ops.find("crm-api", "associateLead").unwrap();
    let base = Base {
        body: op.body_example.clone(),
        path_params: BTreeMap::from([("id".to_owned(), "own-contact".to_owned())]),
        query: Vec::new(),
    };
    let cases = generate(op, &base, &foreign, Size::Bounded).unwrap();
    let body_ref = case(&cases, "leadId: another tenant's id");
    assert_eq!(body_ref.expect, Expect::NotFound);
    let path_ref = case(&cases, "path id: another tenant's id");
    assert_eq!(path_ref.expect, Expect::NotFound);
    assert!(refused(case(&cases, "path id: not a uuid (not-a-uuid)")));
    assert!(refused(case(&cases, "leadId: not a uuid (not-a-uuid)")));

    let request = render(op, &base, Some(path_ref), &[], "c1");
    assert_eq!(request.path, "/contacts/b-contact/leads");
    let request = render(op, &base, Some(body_ref), &[], "c1");
    assert_eq!(request.body.as_deref(), Some(r#"{"leadId":"b-lead"}"#));
    assert_eq!(request.content_type.as_deref(), Some("application/json"));

    let list = ops.find("crm-api", "listContacts").unwrap();
    let cases = generate(list, &Base::default(), &foreign, Size::Bounded).unwrap();
    assert!(refused(case(&cases, "query limit: boundary (0)")));
    assert!(refused(case(
        &cases,
        "query limit: above the maximum (the maximum + 1)"
    )));
    assert!(refused(case(&cases, "query limit: not a number (ten)")));
    assert!(refused(case(&cases, "query limit: huge (10^20)")));
    // A filter naming another tenant's object may answer an empty list.
    assert_eq!(
        case(&cases, "query leadId: another tenant's id").expect,
        Expect::Either
    );
    let ten = render(
        list,
        &Base::default(),
        Some(case(&cases, "query limit: not a number (ten)")),
        &[],
        "c",
    );
    assert_eq!(ten.path, "/contacts?limit=ten");
    assert_eq!(ten.body, None);
}

#[test]
fn requests_carry_raw_values_tagged_emails_and_drop_fields() {
    let ops = operations();
    let op = ops.find("crm-api", "createContact").unwrap();
    let base = Base {
        body: op.body_example.clone(),
        ..Base::default()
    };
    let cases = generate(op, &base, &BTreeMap::new(), Size::Bounded).unwrap();
    let surrogate = render(
        op,
        &base,
        Some(case(&cases, "firstName: lone surrogate (\\ud800)")),
        &[],
        "c7",
    );
    let body = surrogate.body.unwrap();
    assert!(body.contains(r#""firstName":"a\ud800b""#), "{body}");
    assert!(body.contains(r#""email":"ada+c7@example.com""#), "{body}");
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "a lone surrogate is not JSON serde reads"
    );

    let overflow = render(
        op,
        &base,
        Some(case(&cases, "amount: overflow (1e309)")),
        &[],
        "c8",
    );
    assert!(overflow.body.unwrap().contains(r#""amount":1e309"#));

    let nul = case(&cases, "firstName: control characters (a NUL byte)");
    let description = FieldPath(vec![Seg::Key("description".into())]);
    let minimal = render(op, &base, Some(nul), &[description], "c9");
    let json: Value = serde_json::from_str(minimal.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        json,
        json!({ "email": "ada+c9@example.com", "firstName": "a\u{0}b" })
    );

    let plain = render(
        op,
        &base,
        Some(case(&cases, "body: content type text/plain")),
        &[],
        "c",
    );
    assert_eq!(plain.content_type.as_deref(), Some("text/plain"));
}
