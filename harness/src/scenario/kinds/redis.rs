//! The `redis` step: the platform's queues as the harness sees them (the
//! jobs of the scenario's own tenants on a queue or its dead letters), a
//! key's value, and a job added as a service would add it.

use std::collections::BTreeSet;
use std::time::Instant;

use redis::AsyncCommands as _;
use serde_json::{json, Value as Json};

use super::{KindDef, StepCx, StepError};
use crate::contract;
use crate::report::{Message, MessageKind};
use crate::scenario::model::Need;
use crate::scenario::read::{boolean, closest, keyed, string, uint, Cx};
use crate::scenario::run::{check, queue};
use crate::scenario::schema::{self, Key};
use crate::scenario::steps::{action, tenant};
use crate::scenario::vars::Scope;
use crate::scenario::yaml::{Node, Value};

/// A check on Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisStep {
    /// A queue's length (or its dead-letter queue's).
    QueueSize {
        queue: String,
        dead_letter: bool,
        size: u64,
    },
    /// A key exists (or not), optionally with a value.
    Key {
        key: String,
        exists: bool,
        value: Option<String>,
    },
    /// Adds a job to a queue as a service would (`XADD tekup:queue:<queue>`),
    /// e.g. a lead's `process-lead` job handed to the workers again, as the
    /// queue's at-least-once delivery may.
    Enqueue {
        queue: String,
        /// The job kind, e.g. `process-lead`.
        kind: String,
        /// One of the scenario's tenants.
        tenant: String,
        payload: serde_json::Value,
    },
}

/// The keys of a queue's size check.
const QUEUE: [Key; 3] = [
    Key::new("queue", schema::text)
        .help("The queue (`leads`); only the scenario's tenants' jobs count."),
    Key::new("dead-letter", schema::boolean).help("Count its dead letters instead."),
    Key::new("size", schema::count).required(),
];

/// The keys of a key check.
const KEY: [Key; 3] = [
    Key::new("key", schema::text),
    Key::new("exists", schema::boolean).help("Default true."),
    Key::new("value", schema::text).help("The key's string value."),
];

/// The keys of an added job.
const ENQUEUE: [Key; 4] = [
    Key::new("enqueue", queue_names).help("The queue, one of the platform contract's."),
    Key::new("kind", schema::text)
        .required()
        .help("The job kind, e.g. `process-lead`."),
    Key::new("tenant", schema::text).required(),
    Key::new("payload", object).required(),
];

fn queue_names() -> Json {
    json!({ "enum": contract::active().queue_names() })
}

fn object() -> Json {
    json!({ "type": "object" })
}

impl KindDef for RedisStep {
    const NAME: &'static str = "redis";
    const ABOUT: &'static str =
        "A queue's size (the scenario's own jobs), a key's value, or a job added as a service would.";
    const RETRIED: bool = true;

    fn decode(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Option<Self> {
        decode(cx, node, "`redis` step", scope)
    }

    fn schema() -> Json {
        schema::actions(&[("queue", &QUEUE), ("key", &KEY), ("enqueue", &ENQUEUE)])
    }

    fn label(&self) -> String {
        match self {
            RedisStep::QueueSize {
                queue,
                dead_letter,
                size,
            } => format!(
                "redis {queue}{} holds {size}",
                if *dead_letter { " dead letters" } else { "" }
            ),
            RedisStep::Enqueue {
                queue,
                kind,
                tenant,
                ..
            } => format!("redis enqueue {kind} on {queue} for {tenant}"),
            RedisStep::Key { key, exists, .. } => {
                format!(
                    "redis key {key} {}",
                    if *exists { "exists" } else { "absent" }
                )
            }
        }
    }

    fn needs(&self) -> Option<Need> {
        Some(Need::Redis)
    }

    fn acts(&self) -> Option<&'static str> {
        matches!(self, RedisStep::Enqueue { .. }).then_some("adds a job")
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        run(cx, self).await
    }
}

fn decode(cx: &mut Cx<'_>, node: &Node, what: &str, scope: &Scope) -> Option<RedisStep> {
    let (act, target) = action(cx, node, what, &["queue", "key", "enqueue"])?;
    if act == "enqueue" {
        return enqueue(cx, node, target, scope);
    }
    if act == "queue" {
        let f = keyed(cx, node, "`redis: queue` step", &QUEUE)?;
        let queue = string(cx, target, "queue");
        let dead_letter = match f.get("dead-letter") {
            Some(n) => boolean(cx, n, "dead-letter")?,
            None => false,
        };
        let size = f
            .require(cx, "size", "size: 0")
            .and_then(|n| uint(cx, n, "size", u64::MAX));
        return Some(RedisStep::QueueSize {
            queue: queue?,
            dead_letter,
            size: size?,
        });
    }
    let f = keyed(cx, node, "`redis: key` step", &KEY)?;
    let key = string(cx, target, "key");
    let exists = match f.get("exists") {
        Some(n) => boolean(cx, n, "exists")?,
        None => true,
    };
    let value = f.string(cx, "value");
    Some(RedisStep::Key {
        key: key?,
        exists,
        value,
    })
}

/// `redis: { enqueue: <queue>, kind: <job kind>, tenant: <tenant>, payload: {...} }`.
fn enqueue(cx: &mut Cx<'_>, node: &Node, target: &Node, scope: &Scope) -> Option<RedisStep> {
    let f = keyed(cx, node, "`redis: enqueue` step", &ENQUEUE)?;
    let queue = string(cx, target, "enqueue").and_then(|q| {
        let names = contract::active().queue_names();
        if names.contains(&q.as_str()) {
            return Some(q);
        }
        let guess = closest(&q, &names)
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        cx.error(
            target.pos,
            format!("unknown queue `{q}`"),
            format!("{guess}the queues are {}", names.join(", ")),
        );
        None
    });
    let kind = f.req_string(cx, "kind", "kind: process-lead");
    let tenant = f
        .require(cx, "tenant", "tenant: acme")
        .and_then(|_| tenant(cx, &f, "tenant", scope));
    let payload = f
        .require(cx, "payload", "payload: { leadId: \"${lead}\" }")
        .and_then(|n| {
            if matches!(n.value, Value::Map(_)) {
                Some(n.to_json())
            } else {
                cx.error(
                    n.pos,
                    format!("`payload` must be a map, found {}", n.describe()),
                    "write the job's payload as the services read it, e.g. `payload: { leadId: \"${lead}\", originApp: flow-web }`",
                );
                None
            }
        });
    Some(RedisStep::Enqueue {
        queue: queue?,
        kind: kind?,
        tenant: tenant?,
        payload: payload?,
    })
}

async fn run(cx: &mut StepCx<'_, '_>, step: &RedisStep) -> Result<(), StepError> {
    let mut redis = cx.redis()?;
    let started = Instant::now();
    let result = match step {
        RedisStep::QueueSize {
            queue,
            dead_letter,
            size,
        } => {
            let stream = queue::stream(queue, *dead_letter);
            let tenants: BTreeSet<&str> =
                cx.values.tenants.values().map(|t| t.id.as_str()).collect();
            let (mine, all) = queue::tenant_jobs(&mut redis, &stream, &tenants).await?;
            *cx.note = Some(format!("{mine} of {all} in {stream}"));
            if mine == *size {
                Ok(())
            } else {
                Err(StepError::from(format!(
                    "`{stream}` holds {mine} job(s) of this scenario's tenants, expected {size} ({all} in all)"
                )))
            }
        }
        RedisStep::Enqueue {
            queue,
            kind,
            tenant,
            payload,
        } => {
            let tenant_id = cx
                .values
                .tenants
                .get(tenant)
                .map(|t| t.id.clone())
                .ok_or_else(|| format!("tenant `{tenant}` was not created for this run"))?;
            let payload = cx.values.json(payload)?;
            let correlation = cx.correlation_id();
            let traceparent = cx.traceparent();
            let job = queue::enqueue_job(
                &mut redis,
                queue,
                kind,
                &tenant_id,
                payload,
                &correlation,
                Some(&traceparent),
            )
            .await?;
            cx.observe(Message {
                at_ms: cx.clock.now_ms(),
                from: "harness".into(),
                to: "redis".into(),
                kind: MessageKind::Job,
                label: format!("XADD {queue} {kind}"),
                correlation_id: Some(correlation),
            });
            *cx.note = Some(format!("job {}", job["id"].as_str().unwrap_or("?")));
            Ok(())
        }
        RedisStep::Key { key, exists, value } => {
            let key = cx.values.text(key)?;
            let got: Option<String> = redis
                .get(&key)
                .await
                .map_err(|e| format!("GET {key}: {e} (only string keys can be checked)"))?;
            match (got, exists, value) {
                (None, false, _) => Ok(()),
                (Some(v), false, _) => Err(StepError::from(format!(
                    "key `{key}` exists (value `{v}`), expected it absent"
                ))),
                (None, true, _) => Err(StepError::from(format!("key `{key}` does not exist"))),
                (Some(v), true, Some(want)) => {
                    let want = cx.values.text(want)?;
                    if v == want {
                        Ok(())
                    } else {
                        Err(StepError {
                            message: format!("key `{key}` has another value"),
                            diff: Some(check::diff_text(&want, &v)),
                            ..StepError::default()
                        })
                    }
                }
                (Some(_), true, None) => Ok(()),
            }
        }
    };
    cx.waited(started.elapsed());
    result
}
