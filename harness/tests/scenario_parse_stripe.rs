//! The `stripe` step's forms: `webhook`, `event` and `delivered` give the
//! model (and save names for later steps); malformed ones the exact
//! `file:line:col`, message and hint.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use tekup_harness::scenario::run::needs_ecosystem_alone;
use tekup_harness::scenario::{parse_str, StepKind, StripeAction, StripeStep};

fn errors(text: &str) -> String {
    parse_str(Path::new("s.yaml"), text)
        .expect_err("the file is invalid")
        .to_string()
}

fn steps(body: &str) -> Vec<StripeStep> {
    let text = format!("name: x\nsteps:\n{body}");
    let s = parse_str(Path::new("s.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    s.steps
        .into_iter()
        .map(|s| match s.kind {
            StepKind::Stripe(m) => m,
            StepKind::Eventually(e) => match e.step.kind {
                StepKind::Stripe(m) => m,
                other => panic!("not a stripe step: {other:?}"),
            },
            other => panic!("not a stripe step: {other:?}"),
        })
        .collect()
}

fn saved(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_three_actions_give_the_model_and_save_for_later_steps() {
    let got = steps(
        "  - stripe: { webhook: \"${crm-api.peer-url}/webhooks/stripe\", secret: whsec_x, events: [payment_intent.succeeded], save: { endpoint: id } }\n  \
         - stripe: { event: payment_intent.succeeded, object: { id: pi_1, object: payment_intent }, mock: stripe-eu, save: { event: id } }\n  \
         - eventually:\n      within: 5s\n      stripe: { delivered: \"${event}\", to: \"${endpoint}\", status: 200, save: { sig: signature } }\n  \
         - stripe: { webhook: http://x/hook }\n",
    );
    assert_eq!(
        got,
        [
            StripeStep {
                mock: "stripe".into(),
                action: StripeAction::Webhook {
                    url: "${crm-api.peer-url}/webhooks/stripe".into(),
                    secret: Some("whsec_x".into()),
                    events: vec!["payment_intent.succeeded".into()],
                },
                save: saved(&[("endpoint", "id")]),
            },
            StripeStep {
                mock: "stripe-eu".into(),
                action: StripeAction::Event {
                    kind: "payment_intent.succeeded".into(),
                    object: json!({ "id": "pi_1", "object": "payment_intent" }),
                },
                save: saved(&[("event", "id")]),
            },
            StripeStep {
                mock: "stripe".into(),
                action: StripeAction::Delivered {
                    event: "${event}".into(),
                    to: Some("${endpoint}".into()),
                    status: Some(200),
                },
                save: saved(&[("sig", "signature")]),
            },
            StripeStep {
                mock: "stripe".into(),
                action: StripeAction::Webhook {
                    url: "http://x/hook".into(),
                    secret: None,
                    events: Vec::new(),
                },
                save: BTreeMap::new(),
            },
        ]
    );
}

#[test]
fn registering_an_endpoint_runs_the_scenario_alone_emitting_and_checking_do_not() {
    let alone = |body: &str| {
        let s = parse_str(Path::new("s.yaml"), &format!("name: x\nsteps:\n{body}"))
            .unwrap_or_else(|e| panic!("{e}"));
        needs_ecosystem_alone(&s)
    };
    assert!(alone("  - stripe: { webhook: http://x/hook }\n"));
    assert!(!alone(
        "  - stripe: { event: customer.created, object: {}, save: { e: id } }\n  \
         - stripe: { delivered: \"${e}\" }\n"
    ));
    let s = &steps("  - stripe: { delivered: evt_1 }\n")[0];
    assert_eq!(
        StepKind::Stripe(s.clone()).needs(),
        Some(tekup_harness::scenario::Need::Mock("stripe".into()))
    );
}

#[test]
fn an_unknown_action_is_named_with_the_closest_one() {
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { delivred: evt_1, status: 200 }\n"),
        "s.yaml:3:15: unknown action `delivred` in `stripe` step\n  hint: did you mean `delivered`? the actions are webhook, event, delivered"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { to: http://x/hook }\n"),
        "s.yaml:3:13: `stripe` step needs one of webhook, event, delivered\n  hint: add e.g. `webhook: name`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { event: customer.created, object: {}, delivered: evt_1 }\n"),
        "s.yaml:3:52: `stripe` step does one thing; `event` and `delivered` are both given\n  hint: split it into two steps"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { delivered: evt_1, within: 5s }\n"),
        "s.yaml:3:33: unknown key `within` in `stripe: delivered` step\n  hint: the keys are delivered, to, status, mock, save"
    );
}

#[test]
fn a_missing_required_key_is_named_with_an_example() {
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { event: payment_intent.succeeded }\n"),
        "s.yaml:3:13: `stripe: event` step needs `object`\n  hint: add `object: \"${intent-object}\"` (a saved object) or `object: { id: pi_1, object: payment_intent }`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { delivered: \"\" }\n"),
        "s.yaml:3:26: `delivered` is empty\n  hint: write the event's id, e.g. `delivered: \"${event}\"`"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_refused_where_it_is() {
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { webhook: http://x/hook, events: payment_intent.succeeded }\n"),
        "s.yaml:3:47: `events` must be a list, found a string\n  hint: write `events: [a, b]`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { webhook: http://x/hook, events: [] }\n"),
        "s.yaml:3:47: `events: []` names no event type\n  hint: name the types, e.g. `events: [payment_intent.succeeded]`, or leave `events` out for all of them"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { event: customer.created, object: [1] }\n"),
        "s.yaml:3:48: `object` must be a map (the event's `data.object`), found a list\n  hint: write the object, e.g. `object: { id: pi_1, object: payment_intent }`, or a saved one: `object: \"${intent-object}\"`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { delivered: evt_1, status: ok }\n"),
        "s.yaml:3:41: `status` must be a whole number up to 599, found `ok`\n  hint: write e.g. `status: 1` without quotes"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { delivered: evt_1, save: signature }\n"),
        "s.yaml:3:39: `save` must be a map of names to fields of a delivery, found a string\n  hint: write e.g. `save: { signature: signature }`"
    );
}

#[test]
fn save_names_a_field_of_what_the_action_returns() {
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { webhook: http://x/hook, save: { endpoint: $.id } }\n"),
        "s.yaml:3:57: the endpoint has no field `$.id`\n  hint: did you mean `id`? its fields are id, url, secret, enabled_events"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { delivered: evt_1, save: { sig: signature-header } }\n"),
        "s.yaml:3:46: a delivery has no field `signature-header`\n  hint: its fields are eventId, eventType, url, attempts, status, delivered, error, payload, signature"
    );
    // A name saved by one step is in scope for the next ones only.
    assert_eq!(
        errors("name: x\nsteps:\n  - stripe: { delivered: \"${event}\" }\n  - stripe: { event: customer.created, object: {}, save: { event: id } }\n"),
        "s.yaml:3:26: `${event}` is not defined here\n  hint: no step before this one saves a value; also usable: a tenant (`${acme}`, `${acme.key}`), `${env.NAME}`, `${crm-api.url}`, `${uuid}`, `${email}`, `${now}`, `${cross-app-token:iss=..,aud=..,sub=..}`"
    );
}

#[test]
fn fail_fast_on_refuses_a_stripe_step_that_acts() {
    assert_eq!(
        errors("name: x\nsteps:\n  - eventually:\n      within: 5s\n      stripe: { delivered: evt_1 }\n      fail-fast-on: { stripe: { event: customer.created, object: {} } }\n"),
        "s.yaml:6:23: `fail-fast-on` checks a state; this `stripe` step emits an event\n  hint: check with a step that only looks: one of http, ws, sql, redis, mock, stripe, not an action that changes something"
    );
}

/// The example of scenarios/README.md (Stripe webhooks) is a scenario's
/// `setup`, `steps` and `teardown` that the checker takes.
#[test]
fn the_readme_example_parses() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/README.md"),
    )
    .expect("README");
    let section = readme
        .split("\n## Stripe webhooks")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Stripe webhooks section");
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("an example");
    // The example's "... saved as `intent-object`", given here.
    let text = format!("name: x\nvars: {{ intent-object: {{ id: pi_1 }} }}\n{block}");
    let s = parse_str(Path::new("README.md"), &text).unwrap_or_else(|e| panic!("{block}\n{e}"));
    let kinds: Vec<&str> = s.run_order().map(|s| s.kind.name()).collect();
    assert_eq!(kinds, ["stripe", "stripe", "eventually", "http"]);
    assert!(needs_ecosystem_alone(&s));
}
