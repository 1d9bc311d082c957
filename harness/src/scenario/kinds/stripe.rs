//! The `stripe` step: the Stripe mock's webhooks as a scenario uses them.
//! It registers a webhook endpoint (`webhook`), emits a signed event to
//! the endpoints (`event`, like `stripe trigger`), and checks that an event
//! reached an endpoint (`delivered`), saving fields of what the mock
//! answers: the endpoint's `id`, the event's `id`, the delivery's `signature`.
//!
//! It talks to the mock's admin routes (`/__admin/stripe/...`) in the
//! mock's own types (`tekup_mocks::stripe::{EndpointSpec, TriggerSpec,
//! WebhookEndpoint, Delivery}`), so the two sides cannot drift apart and a
//! scenario never spells the admin API out.
//!
//! The mock sends every event to every endpoint that enabled its type,
//! whichever scenario caused it: an endpoint one scenario registers would
//! receive the events of all the others (and the service behind it act on
//! them). Registering therefore runs the scenario with the ecosystem
//! alone, and the scenario removes the endpoint in its teardown (Stripe's
//! own `DELETE /v1/webhook_endpoints/{id}`) before the others run again.
//! Emitting and checking change nothing the others see: an event reaches
//! only the endpoints there are (the alone scenario's, while it runs), and
//! `delivered` looks at one event's deliveries only.
//!
//! `delivered` reads the deliveries once: the mock delivers in the
//! background (and retries a failed attempt), so it is written under
//! `eventually`, which retries it until the delivery is done.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::{json, Value as Json};
use tekup_mocks::stripe::{Delivery, EndpointSpec, TriggerSpec, WebhookEndpoint};

use super::{KindDef, StepCx, StepError};
use crate::env::MockHandle;
use crate::report::{Message, MessageKind};
use crate::scenario::model::Need;
use crate::scenario::read::{closest, keyed, string, string_list, Cx, Fields};
use crate::scenario::schema::{self, Key};
use crate::scenario::steps::{action, status};
use crate::scenario::vars::{pieces, Piece, Scope};
use crate::scenario::yaml::{Node, Value};

/// The ecosystem's Stripe mock component (`[component.stripe]`).
const DEFAULT_MOCK: &str = "stripe";

/// A `stripe` step: one action on a Stripe mock, and the fields of its
/// answer to save.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeStep {
    /// The mock component (`stripe` unless `mock:` names another).
    pub mock: String,
    pub action: StripeAction,
    /// Saved name → field of what the action returns (the endpoint, the
    /// event, the last matching delivery).
    pub save: BTreeMap<String, String>,
}

/// What a `stripe` step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StripeAction {
    /// Adds a webhook endpoint: events of the `events` types (all when
    /// empty) are POSTed to `url`, signed with `secret` (the mock makes one
    /// up when it is absent: save `secret` to learn it).
    Webhook {
        url: String,
        secret: Option<String>,
        events: Vec<String>,
    },
    /// Creates an event of type `kind` for `object` and sends it to the
    /// endpoints that enabled its type.
    Event { kind: String, object: Json },
    /// Every delivery of `event` (to the endpoint at `to`, if given) got
    /// `status` from the endpoint, or a 2xx when `status` is absent.
    Delivered {
        event: String,
        to: Option<String>,
        status: Option<u16>,
    },
}

/// The fields of a registered endpoint ([`WebhookEndpoint`] as JSON).
const ENDPOINT_FIELDS: [&str; 4] = ["id", "url", "secret", "enabled_events"];
/// The fields of an event (the mock's Stripe event object).
const EVENT_FIELDS: [&str; 9] = [
    "id",
    "object",
    "api_version",
    "created",
    "data",
    "livemode",
    "pending_webhooks",
    "request",
    "type",
];
/// The fields of a delivery ([`Delivery`] as JSON).
const DELIVERY_FIELDS: [&str; 9] = [
    "eventId",
    "eventType",
    "url",
    "attempts",
    "status",
    "delivered",
    "error",
    "payload",
    "signature",
];

const MOCK: Key = Key::new("mock", schema::text)
    .help("The Stripe mock component (default `stripe`, the ecosystem's).");

/// The keys of `stripe: { webhook: ... }`.
const WEBHOOK: [Key; 5] = [
    Key::new("webhook", schema::text).help(
        "The URL events are POSTed to, as the mock reaches it (`${crm-api.peer-url}/webhooks/stripe`).",
    ),
    Key::new("secret", schema::text)
        .help("The signing secret (`whsec_...`); the mock makes one up when absent."),
    Key::new("events", events_schema).help("The event types sent to it; all when left out."),
    MOCK,
    Key::new("save", endpoint_save)
        .help("Names to fields of the endpoint (`endpoint: id`), used later as `${endpoint}`."),
];

/// The keys of `stripe: { event: ... }`.
const EVENT: [Key; 4] = [
    Key::new("event", schema::text).help("The event type, e.g. `payment_intent.succeeded`."),
    Key::new("object", object_schema)
        .required()
        .help("The event's `data.object`: a map, or a saved object (`\"${intent-object}\"`)."),
    MOCK,
    Key::new("save", event_save)
        .help("Names to fields of the event (`event: id`), used later as `${event}`."),
];

/// The keys of `stripe: { delivered: ... }`.
const DELIVERED: [Key; 5] = [
    Key::new("delivered", schema::text)
        .help("The event's id (`${event}`); retry it under `eventually`."),
    Key::new("to", schema::text).help("Only its delivery to this endpoint URL counts."),
    Key::new("status", schema::status)
        .help("What the endpoint answered the last attempt; a 2xx when left out."),
    MOCK,
    Key::new("save", delivery_save)
        .help("Names to fields of the (last) delivery (`signature: signature`)."),
];

/// The actions, each with its keys and the fields `save` may name.
const ACTIONS: [(&str, &[Key], &[&str]); 3] = [
    ("webhook", &WEBHOOK, &ENDPOINT_FIELDS),
    ("event", &EVENT, &EVENT_FIELDS),
    ("delivered", &DELIVERED, &DELIVERY_FIELDS),
];

fn events_schema() -> Json {
    json!({ "type": "array", "items": schema::text(), "minItems": 1 })
}

fn object_schema() -> Json {
    json!({ "anyOf": [{ "type": "object" }, { "type": "string", "pattern": "^\\$\\{[^}]+\\}$" }] })
}

fn save_schema(fields: &[&str]) -> Json {
    json!({ "type": "object", "additionalProperties": { "enum": fields } })
}

fn endpoint_save() -> Json {
    save_schema(&ENDPOINT_FIELDS)
}

fn event_save() -> Json {
    save_schema(&EVENT_FIELDS)
}

fn delivery_save() -> Json {
    save_schema(&DELIVERY_FIELDS)
}

impl KindDef for StripeStep {
    const NAME: &'static str = "stripe";
    const ABOUT: &'static str =
        "The Stripe mock's webhooks: register a `webhook` endpoint, emit a signed `event`, check it was `delivered`.";
    const RETRIED: bool = true;

    fn decode(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Option<Self> {
        decode(cx, node, scope)
    }

    fn schema() -> Json {
        schema::actions(&ACTIONS.map(|(name, keys, _)| (name, keys)))
    }

    fn label(&self) -> String {
        let stripe = if self.mock == DEFAULT_MOCK {
            "stripe".to_owned()
        } else {
            format!("stripe ({})", self.mock)
        };
        match &self.action {
            StripeAction::Webhook { url, events, .. } if events.is_empty() => {
                format!("{stripe} webhook {url}")
            }
            StripeAction::Webhook { url, events, .. } => {
                format!("{stripe} webhook {url} for {}", events.join(", "))
            }
            StripeAction::Event { kind, .. } => format!("{stripe} event {kind}"),
            // The status it expects is in the failure; the one it got, in the note.
            StripeAction::Delivered { event, to, .. } => format!(
                "{stripe} delivered {event}{}",
                to.as_ref().map(|t| format!(" to {t}")).unwrap_or_default(),
            ),
        }
    }

    fn needs(&self) -> Option<Need> {
        Some(Need::Mock(self.mock.clone()))
    }

    /// An endpoint receives every scenario's events (see the module docs).
    fn alone(&self) -> bool {
        matches!(self.action, StripeAction::Webhook { .. })
    }

    fn acts(&self) -> Option<&'static str> {
        match self.action {
            StripeAction::Webhook { .. } => Some("registers a webhook endpoint"),
            StripeAction::Event { .. } => Some("emits an event"),
            StripeAction::Delivered { .. } => None,
        }
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        run(cx, self).await
    }
}

fn decode(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Option<StripeStep> {
    let names = ACTIONS.map(|(name, _, _)| name);
    if let Value::Map(entries) = &node.value {
        // No action, but a key that is none of the actions' keys: most
        // likely a misspelt action (`delivred`), named as such.
        let known = |k: &str| {
            ACTIONS
                .iter()
                .any(|(_, keys, _)| keys.iter().any(|key| key.name == k))
        };
        let given = |a: &&str| entries.iter().any(|(k, _)| k.key_text() == *a);
        let unknown = entries.iter().find(|(k, _)| !known(&k.key_text()));
        if let (false, Some((key, _))) = (names.iter().any(given), unknown) {
            let text = key.key_text();
            let guess = closest(&text, &names)
                .map(|a| format!("did you mean `{a}`? "))
                .unwrap_or_default();
            cx.error(
                key.pos,
                format!("unknown action `{text}` in `stripe` step"),
                format!("{guess}the actions are {}", names.join(", ")),
            );
            return None;
        }
    }
    let (act, target) = action(cx, node, "`stripe` step", &names)?;
    let (_, keys, fields) = ACTIONS.iter().find(|(name, _, _)| *name == act)?;
    let what = format!("`stripe: {act}` step");
    let f = keyed(cx, node, &what, keys)?;
    let target = nonempty(cx, target, act);
    let mock = match f.get("mock") {
        None => Some(DEFAULT_MOCK.to_owned()),
        Some(n) => nonempty(cx, n, "mock"),
    };
    let save = save(cx, &f, act, fields);
    let action = match act {
        "webhook" => {
            let secret = f.get("secret").and_then(|n| nonempty(cx, n, "secret"));
            let events = match f.get("events") {
                None => Some(Vec::new()),
                Some(n) => events(cx, n),
            };
            StripeAction::Webhook {
                url: target?,
                secret,
                events: events?,
            }
        }
        "event" => {
            let object = f
                .require(
                    cx,
                    "object",
                    "object: \"${intent-object}\"` (a saved object) or `object: { id: pi_1, object: payment_intent }",
                )
                .and_then(|n| object(cx, n));
            StripeAction::Event {
                kind: target?,
                object: object?,
            }
        }
        _ => {
            let status = match f.get("status") {
                None => Some(None),
                Some(n) => status(cx, n).map(Some),
            };
            StripeAction::Delivered {
                event: target?,
                to: f.get("to").and_then(|n| nonempty(cx, n, "to")),
                status: status?,
            }
        }
    };
    let save = save?;
    scope.saved.extend(save.keys().cloned());
    Some(StripeStep {
        mock: mock?,
        action,
        save,
    })
}

/// A text that says something.
fn nonempty(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<String> {
    let text = string(cx, node, key)?;
    if text.trim().is_empty() {
        cx.error(
            node.pos,
            format!("`{key}` is empty"),
            match key {
                "webhook" => "write the URL the mock POSTs events to, e.g. `webhook: \"${crm-api.peer-url}/webhooks/stripe\"`",
                "event" => "write the event type, e.g. `event: payment_intent.succeeded`",
                "delivered" => "write the event's id, e.g. `delivered: \"${event}\"`",
                _ => "write a value, or leave the key out",
            },
        );
        return None;
    }
    Some(text)
}

/// `events: [payment_intent.succeeded, ...]`: at least one type.
fn events(cx: &mut Cx<'_>, node: &Node) -> Option<Vec<String>> {
    let before = cx.errors.len();
    let events: Vec<String> = string_list(cx, node, "events")
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    if cx.errors.len() > before {
        return None;
    }
    if events.is_empty() {
        cx.error(
            node.pos,
            "`events: []` names no event type",
            "name the types, e.g. `events: [payment_intent.succeeded]`, or leave `events` out for all of them",
        );
        return None;
    }
    Some(events)
}

/// The event's `data.object`: a map, or one reference to a saved object.
fn object(cx: &mut Cx<'_>, node: &Node) -> Option<Json> {
    let one_reference = match &node.value {
        Value::Map(_) => return Some(node.to_json()),
        Value::Scalar { text, .. } => {
            matches!(
                pieces(text).as_deref(),
                Ok([Piece::Text(""), Piece::Ref(_), Piece::Text("")])
            )
        }
        Value::Seq(_) => false,
    };
    if one_reference {
        return Some(node.to_json());
    }
    cx.error(
        node.pos,
        format!(
            "`object` must be a map (the event's `data.object`), found {}",
            node.describe()
        ),
        "write the object, e.g. `object: { id: pi_1, object: payment_intent }`, or a saved one: `object: \"${intent-object}\"`",
    );
    None
}

/// `save: { name: field }`, each field one of what the action returns.
fn save(
    cx: &mut Cx<'_>,
    f: &Fields<'_>,
    act: &str,
    fields: &[&str],
) -> Option<BTreeMap<String, String>> {
    let Some(node) = f.get("save") else {
        return Some(BTreeMap::new());
    };
    let (returned, example) = match act {
        "webhook" => ("the endpoint", "save: { endpoint: id }"),
        "event" => ("the event", "save: { event: id }"),
        _ => ("a delivery", "save: { signature: signature }"),
    };
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!(
                "`save` must be a map of names to fields of {returned}, found {}",
                node.describe()
            ),
            format!("write e.g. `{example}`"),
        );
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let Some(field) = string(cx, v, &k.key_text()) else {
            ok = false;
            continue;
        };
        if !fields.contains(&field.as_str()) {
            let guess = closest(&field, fields)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            cx.error(
                v.pos,
                format!("{returned} has no field `{field}`"),
                format!("{guess}its fields are {}", fields.join(", ")),
            );
            ok = false;
            continue;
        }
        out.insert(k.key_text(), field);
    }
    ok.then_some(out)
}

async fn run(cx: &mut StepCx<'_, '_>, step: &StripeStep) -> Result<(), StepError> {
    let name = step.mock.as_str();
    let handle = cx.component(name)?.as_mock().ok_or_else(|| {
        StepError::from(format!(
            "component `{name}` has no admin API (`admin-path`): the `stripe` step needs the Stripe mock"
        ))
    })?;
    cx.involve(name);
    let http = cx.client();
    let returned = match &step.action {
        StripeAction::Webhook {
            url,
            secret,
            events,
        } => {
            let spec = EndpointSpec {
                url: cx.values.text(url)?,
                secret: secret.as_deref().map(|s| cx.values.text(s)).transpose()?,
                enabled_events: events
                    .iter()
                    .map(|e| cx.values.text(e))
                    .collect::<Result<_, _>>()?,
            };
            cx.observe(message(
                cx,
                name,
                MessageKind::Request,
                format!("add webhook {}", spec.url),
            ));
            let sent = http
                .post(format!("{}/stripe/webhooks", handle.admin_url))
                .json(&spec);
            let shown = shown_request("POST", &handle, "webhooks", Some(&spec));
            let endpoint: WebhookEndpoint = admin(cx, name, sent, shown, "an endpoint").await?;
            *cx.note = Some(endpoint.id.clone());
            serde_json::to_value(&endpoint).map_err(|e| e.to_string())?
        }
        StripeAction::Event { kind, object } => {
            let spec = TriggerSpec {
                kind: cx.values.text(kind)?,
                object: cx.values.json(object)?,
            };
            if !spec.object.is_object() {
                return Err(StepError::from(format!(
                    "`object` of the event is {} once expanded; an event's `data.object` is a map (a Stripe object)",
                    kind_of(&spec.object)
                )));
            }
            cx.observe(message(
                cx,
                name,
                MessageKind::Request,
                format!("emit {}", spec.kind),
            ));
            let sent = http
                .post(format!("{}/stripe/events", handle.admin_url))
                .json(&spec);
            let shown = shown_request("POST", &handle, "events", Some(&spec));
            let event: Json = admin(cx, name, sent, shown, "an event").await?;
            *cx.note = event["id"].as_str().map(str::to_owned);
            event
        }
        StripeAction::Delivered { event, to, status } => {
            let event = cx.values.text(event)?;
            let to = to.as_deref().map(|t| cx.values.text(t)).transpose()?;
            let sent = http.get(format!("{}/stripe/deliveries", handle.admin_url));
            let shown = shown_request::<()>("GET", &handle, "deliveries", None);
            let all: Vec<Delivery> = admin(cx, name, sent, shown, "a list of deliveries").await?;
            let last = delivered(name, &all, &event, to.as_deref(), *status)?;
            *cx.note = Some(format!(
                "{} after {} attempt(s)",
                last.status
                    .map_or("no answer".to_owned(), |s| s.to_string()),
                last.attempts
            ));
            cx.observe(Message {
                at_ms: cx.clock.now_ms(),
                from: name.to_owned(),
                to: receiver(cx, &last.url),
                kind: MessageKind::Event,
                label: format!(
                    "webhook {} → {}",
                    last.event_type,
                    last.status.map_or("-".to_owned(), |s| s.to_string())
                ),
                correlation_id: None,
            });
            serde_json::to_value(last).map_err(|e| e.to_string())?
        }
    };
    for (saved, field) in &step.save {
        let value = returned.get(field).cloned().unwrap_or(Json::Null);
        cx.values.saved.insert(saved.clone(), value);
    }
    Ok(())
}

/// The check of `delivered`: every delivery of `event` (to `to`) got
/// `status` (a 2xx when `None`); the last of them when they all did.
fn delivered(
    mock: &str,
    all: &[Delivery],
    event: &str,
    to: Option<&str>,
    status: Option<u16>,
) -> Result<Delivery, StepError> {
    let listed = |deliveries: &mut dyn Iterator<Item = &Delivery>| {
        let lines: Vec<String> = deliveries.map(line).collect();
        if lines.is_empty() {
            "(none)".to_owned()
        } else {
            lines.join("\n")
        }
    };
    let of_event: Vec<&Delivery> = all.iter().filter(|d| d.event_id == event).collect();
    if of_event.is_empty() {
        return Err(StepError {
            message: format!(
                "event `{event}` was never sent to a webhook endpoint of mock `{mock}`: it was not \
                 emitted there, or no endpoint enabled its type"
            ),
            response: Some(format!(
                "the mock's last deliveries:\n{}",
                listed(&mut all.iter().rev().take(10).rev())
            )),
            ..StepError::default()
        });
    }
    let matching: Vec<&Delivery> = of_event
        .iter()
        .copied()
        .filter(|d| to.is_none_or(|t| d.url == t))
        .collect();
    if matching.is_empty() {
        let mut urls: Vec<&str> = of_event.iter().map(|d| d.url.as_str()).collect();
        urls.dedup();
        return Err(StepError {
            message: format!(
                "event `{event}` was not sent to `{}`; it was sent to {}",
                to.unwrap_or_default(),
                urls.iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            response: Some(listed(&mut of_event.iter().copied())),
            ..StepError::default()
        });
    }
    for d in &matching {
        let ok = match status {
            Some(want) => d.status == Some(want),
            None => d.delivered,
        };
        if ok {
            continue;
        }
        let answered = d
            .status
            .map_or_else(|| "no answer".to_owned(), |s| format!("answered {s}"));
        let why = d
            .error
            .as_ref()
            .filter(|e| d.status.is_none() || !e.starts_with("endpoint answered"))
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let want = status.map_or("a 2xx".to_owned(), |s| s.to_string());
        let message = if d.attempts == 0 {
            format!(
                "event `{event}` is on its way to `{}`: the mock has not tried to deliver it yet",
                d.url
            )
        } else if d.finished() {
            format!(
                "event `{event}` to `{}`: the endpoint {answered}{why} at the last of {} attempt(s), expected {want}",
                d.url, d.attempts
            )
        } else {
            format!(
                "event `{event}` to `{}`: the endpoint {answered}{why} at attempt {}, expected {want}; \
                 the mock retries it",
                d.url, d.attempts
            )
        };
        return Err(StepError {
            message,
            response: Some(listed(&mut matching.iter().copied())),
            ..StepError::default()
        });
    }
    Ok(matching[matching.len() - 1].clone())
}

/// A delivery on one line, for failure reports.
fn line(d: &Delivery) -> String {
    format!(
        "{} {} → {}: {}, {} attempt(s){}",
        d.event_id,
        d.event_type,
        d.url,
        d.status.map_or("no answer".to_owned(), |s| s.to_string()),
        d.attempts,
        if d.delivered { ", delivered" } else { "" }
    )
}

/// Calls one of the mock's admin routes and reads its answer as `T`,
/// counting the round trip as time waited on the system.
async fn admin<T: DeserializeOwned>(
    cx: &mut StepCx<'_, '_>,
    mock: &str,
    request: reqwest::RequestBuilder,
    shown: String,
    what: &str,
) -> Result<T, StepError> {
    let answer = cx
        .waiting(async {
            let response = request.send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        })
        .await;
    let (status, body) = answer.map_err(|e| StepError {
        message: format!(
            "mock `{mock}`'s admin API did not answer: {}",
            crate::env::error_chain(&e)
        ),
        request: Some(shown.clone()),
        ..StepError::default()
    })?;
    if !status.is_success() {
        return Err(StepError {
            message: format!("mock `{mock}` refused the request ({status})"),
            request: Some(shown),
            response: Some(body),
            ..StepError::default()
        });
    }
    serde_json::from_str(&body).map_err(|e| StepError {
        message: format!("mock `{mock}` answered with something other than {what}: {e}"),
        request: Some(shown),
        response: Some(body),
        ..StepError::default()
    })
}

/// An admin request as a failure report shows it.
fn shown_request<T: serde::Serialize>(
    method: &str,
    handle: &MockHandle,
    route: &str,
    body: Option<&T>,
) -> String {
    let body = body
        .and_then(|b| serde_json::to_string_pretty(b).ok())
        .map(|b| format!("\n\n{b}"))
        .unwrap_or_default();
    format!("{method} {}/stripe/{route}{body}", handle.admin_url)
}

/// An arrow from the harness to the mock, for the sequence diagram.
fn message(cx: &StepCx<'_, '_>, mock: &str, kind: MessageKind, label: String) -> Message {
    Message {
        at_ms: cx.clock.now_ms(),
        from: "harness".to_owned(),
        to: mock.to_owned(),
        kind,
        label,
        correlation_id: None,
    }
}

/// The component behind an endpoint URL (as the mock or the harness
/// reaches it), or the URL itself.
fn receiver(cx: &StepCx<'_, '_>, url: &str) -> String {
    cx.values
        .peers
        .iter()
        .chain(&cx.values.components)
        .find(|(_, base)| url.starts_with(base.as_str()))
        .map_or_else(|| url.to_owned(), |(name, _)| name.clone())
}

fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a text",
        Json::Array(_) => "a list",
        Json::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `save` names the fields of what the mock answers: the field lists
    /// are the mock's own types as JSON.
    #[tokio::test]
    async fn the_fields_save_may_name_are_the_mocks() {
        let keys = |v: Json| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
            k.sort();
            k
        };
        let sorted = |f: &[&str]| -> Vec<String> {
            let mut k: Vec<String> = f.iter().map(|s| (*s).to_owned()).collect();
            k.sort();
            k
        };
        let stripe = tekup_mocks::Stripe::start().await.expect("mock");
        let endpoint = stripe.add_webhook("http://127.0.0.1:9/hook", None);
        assert_eq!(
            keys(serde_json::to_value(&endpoint).unwrap()),
            sorted(&ENDPOINT_FIELDS)
        );
        let event = stripe.trigger("customer.created", json!({ "id": "cus_1" }));
        assert_eq!(keys(event), sorted(&EVENT_FIELDS));
        let delivery = stripe.deliveries().remove(0);
        assert_eq!(
            keys(serde_json::to_value(&delivery).unwrap()),
            sorted(&DELIVERY_FIELDS)
        );
    }

    fn delivery(event: &str, url: &str, attempts: u32, status: Option<u16>) -> Delivery {
        Delivery {
            event_id: event.into(),
            event_type: "payment_intent.succeeded".into(),
            url: url.into(),
            attempts,
            status,
            delivered: status.is_some_and(|s| (200..300).contains(&s)),
            error: status
                .filter(|s| !(200..300).contains(s))
                .map(|s| format!("endpoint answered {s}")),
            payload: "{}".into(),
            signature: format!("t=1,v1={event}"),
        }
    }

    #[test]
    fn delivered_names_the_event_it_cannot_find() {
        let all = [delivery("evt_a", "http://crm/webhooks", 1, Some(200))];
        let err = delivered("stripe", &all, "evt_nope", None, None).unwrap_err();
        assert_eq!(
            err.message,
            "event `evt_nope` was never sent to a webhook endpoint of mock `stripe`: it was not \
             emitted there, or no endpoint enabled its type"
        );
        assert!(err
            .response
            .unwrap()
            .contains("evt_a payment_intent.succeeded"));
        let err = delivered("stripe", &all, "evt_a", Some("http://other/hook"), None).unwrap_err();
        assert_eq!(
            err.message,
            "event `evt_a` was not sent to `http://other/hook`; it was sent to `http://crm/webhooks`"
        );
    }

    #[test]
    fn delivered_wants_a_2xx_or_the_status_given_of_every_delivery() {
        let url = "http://crm/webhooks";
        let ok = [delivery("evt_a", url, 1, Some(200))];
        assert_eq!(
            delivered("stripe", &ok, "evt_a", Some(url), None)
                .unwrap()
                .attempts,
            1
        );
        assert!(delivered("stripe", &ok, "evt_a", None, Some(200)).is_ok());
        let refused = [delivery("evt_a", url, 3, Some(400))];
        assert_eq!(
            delivered("stripe", &refused, "evt_a", None, None)
                .unwrap_err()
                .message,
            "event `evt_a` to `http://crm/webhooks`: the endpoint answered 400 at the last of 3 \
             attempt(s), expected a 2xx"
        );
        assert!(delivered("stripe", &refused, "evt_a", None, Some(400)).is_ok());
        let retrying = [delivery("evt_a", url, 1, Some(503))];
        assert!(delivered("stripe", &retrying, "evt_a", None, None)
            .unwrap_err()
            .message
            .ends_with(
                "the endpoint answered 503 at attempt 1, expected a 2xx; the mock retries it"
            ));
        let pending = [delivery("evt_a", url, 0, None)];
        assert!(delivered("stripe", &pending, "evt_a", None, None)
            .unwrap_err()
            .message
            .contains("the mock has not tried to deliver it yet"));
        // Two endpoints: one refusal fails the check, whichever is last.
        let two = [
            delivery("evt_a", url, 3, Some(400)),
            delivery("evt_a", "http://b/hook", 1, Some(200)),
        ];
        assert!(delivered("stripe", &two, "evt_a", None, None).is_err());
        assert_eq!(
            delivered("stripe", &two, "evt_a", Some("http://b/hook"), None)
                .unwrap()
                .url,
            "http://b/hook"
        );
    }
}
