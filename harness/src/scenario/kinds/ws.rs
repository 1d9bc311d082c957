//! The `ws` step: the run's WebSocket connections to the event gateway
//! (`/events`), opened as a tenant's app: connect, expect an event (or
//! none for a period), send one. The connections themselves (a reader task
//! each, keeping every frame) are the runner's (`run/ws.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{KindDef, StepCx, StepError};
use crate::report::{Message, MessageKind};
use crate::scenario::ops::Place;
use crate::scenario::read::{closest, keyed, string, Cx};
use crate::scenario::run::{Conn, Opener, DEFAULT_STEP_TIMEOUT};
use crate::scenario::schema::{self, Key};
use crate::scenario::steps::{expected, keyed_action, tenant};
use crate::scenario::vars::Scope;
use crate::scenario::yaml::Node;

/// The component that serves `/events`.
const GATEWAY: &str = "gateway";

/// A WebSocket action on a named connection.
#[derive(Debug, Clone, PartialEq)]
pub enum WsStep {
    /// Opens `name` to the gateway as `tenant`'s `app`.
    Connect {
        name: String,
        tenant: String,
        app: String,
    },
    /// An event of this type arrives within the deadline; `data` matches as a subset.
    Expect {
        name: String,
        event: String,
        within: Duration,
        data: Option<serde_json::Value>,
        /// Matched as a subset against the whole event (`priority`,
        /// `source`, `target`), or the whole frame for non-event frames.
        envelope: Option<serde_json::Value>,
    },
    /// Nothing (or no event of this type) arrives for the duration.
    ExpectNone {
        name: String,
        event: Option<String>,
        duration: Duration,
    },
    /// Sends an event on the connection.
    Send {
        name: String,
        event: String,
        data: Option<serde_json::Value>,
    },
}

/// The actions of a `ws` step, each with its keys.
const ACTIONS: [(&str, &[Key]); 4] = [
    (
        "connect",
        &[
            Key::new("connect", schema::text)
                .help("The connection's name, used by later `ws` steps."),
            Key::new("tenant", schema::text).required(),
            Key::new("app", schema::text).required(),
        ],
    ),
    (
        "expect",
        &[
            Key::new("expect", schema::text).help("The connection that must receive the event."),
            Key::new("event", schema::text)
                .required()
                .help("The event's type, or a frame's `type` (`error`, `closed`)."),
            Key::new("within", schema::duration).required(),
            Key::new("data", schema::expected).help("Matched as a subset of the event's data."),
            Key::new("envelope", schema::expected)
                .help("Matched as a subset of the whole event (`priority`, `source`, `target`)."),
        ],
    ),
    (
        "expect-none",
        &[
            Key::new("expect-none", schema::text),
            Key::new("event", schema::text).help("Only this type counts; any event when left out."),
            Key::new("for", schema::duration).required(),
        ],
    ),
    (
        "send",
        &[
            Key::new("send", schema::text),
            Key::new("event", schema::text).required(),
            Key::new("data", schema::any),
        ],
    ),
];

impl KindDef for WsStep {
    const NAME: &'static str = "ws";
    const ABOUT: &'static str =
        "A WebSocket connection to the event gateway: `connect`, `expect` an event, `expect-none` for a period, `send`.";
    const RETRIED: bool = true;

    fn decode(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Option<Self> {
        decode(cx, node, "`ws` step", scope)
    }

    fn schema() -> Json {
        schema::actions(&ACTIONS)
    }

    fn label(&self) -> String {
        match self {
            WsStep::Connect { name, tenant, app } => format!("ws connect {name} as {tenant}/{app}"),
            WsStep::Expect { name, event, .. } => format!("ws {name} expects {event}"),
            WsStep::ExpectNone {
                name,
                event,
                duration,
            } => format!(
                "ws {name} expects no {} for {duration:?}",
                event.as_deref().unwrap_or("event")
            ),
            WsStep::Send { name, event, .. } => format!("ws {name} sends {event}"),
        }
    }

    fn natural_wait(&self) -> Duration {
        match self {
            WsStep::Expect { within, .. } => *within,
            WsStep::ExpectNone { duration, .. } => *duration,
            WsStep::Connect { .. } | WsStep::Send { .. } => Duration::ZERO,
        }
    }

    fn acts(&self) -> Option<&'static str> {
        match self {
            WsStep::Connect { .. } | WsStep::Send { .. } => Some("acts on a connection"),
            WsStep::Expect { .. } | WsStep::ExpectNone { .. } => None,
        }
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        run(cx, self).await
    }
}

fn decode(cx: &mut Cx<'_>, node: &Node, what: &str, scope: &mut Scope) -> Option<WsStep> {
    let (act, target, keys) = keyed_action(cx, node, what, &ACTIONS)?;
    let what = format!("`ws: {act}` step");
    let f = keyed(cx, node, &what, keys)?;
    let name = string(cx, target, act)?;
    if act == "connect" {
        let tenant_name = f
            .require(cx, "tenant", "tenant: acme")
            .and_then(|_| tenant(cx, &f, "tenant", scope));
        let app = f.req_string(cx, "app", "app: crm-web");
        scope.connections.insert(name.clone());
        return Some(WsStep::Connect {
            name,
            tenant: tenant_name?,
            app: app?,
        });
    }
    if !scope.connections.contains(&name) {
        let known: Vec<&str> = scope.connections.iter().map(String::as_str).collect();
        let guess = closest(&name, &known)
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        cx.error(
            target.pos,
            format!("no WebSocket connection `{name}` is open here"),
            format!(
                "{guess}open it first: `- ws: {{ connect: {name}, tenant: acme, app: crm-web }}`"
            ),
        );
        return None;
    }
    match act {
        "expect" => {
            let event = f.req_string(cx, "event", "event: LEAD_CREATED");
            let within = f.req_duration(cx, "within");
            Some(WsStep::Expect {
                name,
                event: event?,
                within: within?,
                data: f.get("data").map(|n| expected(cx, n, Place::Json)),
                envelope: f.get("envelope").map(|n| expected(cx, n, Place::Json)),
            })
        }
        "expect-none" => {
            let event = f.string(cx, "event");
            let duration = f.req_duration(cx, "for");
            Some(WsStep::ExpectNone {
                name,
                event,
                duration: duration?,
            })
        }
        _ => {
            let event = f.req_string(cx, "event", "event: LEAD_CREATED");
            Some(WsStep::Send {
                name,
                event: event?,
                data: f.json("data"),
            })
        }
    }
}

async fn run(cx: &mut StepCx<'_, '_>, step: &WsStep) -> Result<(), StepError> {
    match step {
        WsStep::Connect { name, tenant, app } => {
            let gateway = cx.url_of(GATEWAY).map_err(|_| {
                format!("the ecosystem has no `{GATEWAY}` component for WebSockets")
            })?;
            cx.involve(GATEWAY);
            let t = cx
                .values
                .tenants
                .get(tenant)
                .cloned()
                .ok_or_else(|| format!("tenant `{tenant}` was not created for this run"))?;
            let app = cx.values.text(app)?;
            let observer = cx.observer(name);
            cx.observe(Message {
                at_ms: cx.clock.now_ms(),
                from: format!("ws:{name}"),
                to: GATEWAY.into(),
                kind: MessageKind::Request,
                label: format!("connect {app}"),
                correlation_id: None,
            });
            // A trace of the run's own, like every request it sends.
            let traceparent = cx.new_trace();
            let started = Instant::now();
            let conn = Conn::open(
                cx.platform().tls(),
                &gateway,
                Opener {
                    tenant_id: &t.id,
                    key: &t.key,
                    app: &app,
                    traceparent: Some(&traceparent),
                },
                DEFAULT_STEP_TIMEOUT,
                observer,
            )
            .await;
            cx.waited(started.elapsed());
            cx.conns.insert(name.clone(), conn?);
            Ok(())
        }
        WsStep::Expect {
            name,
            event,
            within,
            data,
            envelope,
        } => {
            let data = data.as_ref().map(|d| cx.values.json(d)).transpose()?;
            let envelope = envelope.as_ref().map(|e| cx.values.json(e)).transpose()?;
            let conn = conn(cx.conns, name)?;
            let started = Instant::now();
            let result = conn
                .expect(event, data.as_ref(), envelope.as_ref(), *within)
                .await;
            cx.waited(started.elapsed());
            result
                .map(|_| ())
                .map_err(|m| StepError::from(format!("WebSocket `{name}`: {m}")))
        }
        WsStep::ExpectNone {
            name,
            event,
            duration,
        } => {
            let conn = conn(cx.conns, name)?;
            let started = Instant::now();
            let result = conn.expect_none(event.as_deref(), *duration).await;
            cx.waited(started.elapsed());
            result.map_err(|m| StepError::from(format!("WebSocket `{name}`: {m}")))
        }
        WsStep::Send { name, event, data } => {
            let data = data.as_ref().map(|d| cx.values.json(d)).transpose()?;
            cx.observe(Message {
                at_ms: cx.clock.now_ms(),
                from: format!("ws:{name}"),
                to: GATEWAY.into(),
                kind: MessageKind::Event,
                label: event.clone(),
                correlation_id: None,
            });
            conn(cx.conns, name)?
                .send(event, data.as_ref())
                .await
                .map_err(StepError::from)
        }
    }
}

fn conn<'c>(conns: &'c BTreeMap<String, Conn>, name: &str) -> Result<&'c Conn, StepError> {
    conns.get(name).ok_or_else(|| {
        StepError::from(format!(
            "WebSocket `{name}` is not open (its `connect` step failed or has not run)"
        ))
    })
}
