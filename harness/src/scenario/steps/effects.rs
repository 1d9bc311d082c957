//! The step kinds that act on or look into the ecosystem's parts beside
//! HTTP: Redis, the external API mocks, and chaos faults.

use super::super::model::{
    ChaosStep, MockAnswer, MockFault, MockParts, MockRequest, MockResponse, MockStep, RedisStep,
    Toxic,
};
use std::time::Duration;

use super::super::read::{
    self, boolean, closest, duration, fields, string, string_list, uint, Cx, Fields,
};
use super::super::vars::Scope;
use super::super::yaml::{Node, Value};
use super::{action, status, tenant};
use crate::contract;

pub(super) fn redis(cx: &mut Cx<'_>, node: &Node, what: &str, scope: &Scope) -> Option<RedisStep> {
    let (act, target) = action(cx, node, what, &["queue", "key", "enqueue"])?;
    if act == "enqueue" {
        return enqueue(cx, node, target, scope);
    }
    if act == "queue" {
        let f = fields(
            cx,
            node,
            "`redis: queue` step",
            &["queue", "dead-letter", "size"],
        )?;
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
    let f = fields(cx, node, "`redis: key` step", &["key", "exists", "value"])?;
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
    let f = fields(
        cx,
        node,
        "`redis: enqueue` step",
        &["enqueue", "kind", "tenant", "payload"],
    )?;
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

/// `expected`: the request of `mock: expect` (its `json` may hold
/// operators); `set`'s is matched by the mock itself, literally.
fn mock_request(cx: &mut Cx<'_>, f: &Fields<'_>, expected: bool) -> Option<MockRequest> {
    let Some(n) = f.get("request") else {
        return Some(MockRequest::default());
    };
    let r = fields(
        cx,
        n,
        "`request` of a `mock` step",
        &["method", "path", "json"],
    )?;
    Some(MockRequest {
        method: r.string(cx, "method").map(|m| m.to_ascii_uppercase()),
        path: r.string(cx, "path"),
        json: if expected {
            r.get("json")
                .map(|n| super::expected(cx, n, super::super::ops::Place::Json))
        } else {
            r.json("json")
        },
    })
}

fn times(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<Option<u32>> {
    match f.get("times") {
        None => Some(None),
        Some(n) => uint(cx, n, "times", u64::from(u32::MAX))
            .and_then(|t| u32::try_from(t).ok())
            .map(Some),
    }
}

pub(super) fn mock(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<MockStep> {
    let (act, target) = action(
        cx,
        node,
        what,
        &["expect", "expect-none", "set", "fault", "clear"],
    )?;
    let what = format!("`mock: {act}` step");
    let allowed: &[&str] = match act {
        "expect" => &["expect", "request", "answered", "times"],
        "expect-none" => &["expect-none", "request", "for"],
        "set" => &["set", "request", "respond"],
        "clear" => &["clear", "only"],
        _ => &[
            "fault",
            "method",
            "path",
            "status",
            "json",
            "delay",
            "retry-after",
            "reset",
            "malformed",
            "truncated",
            "stall",
            "times",
            "ratio",
        ],
    };
    let f = fields(cx, node, &what, allowed)?;
    let mock = string(cx, target, act)?;
    match act {
        "expect" => {
            let request = mock_request(cx, &f, true);
            let answered = answered(cx, &f);
            let times = times(cx, &f);
            Some(MockStep::Expect {
                mock,
                request: request?,
                answered: answered?,
                times: times?,
            })
        }
        "expect-none" => {
            let request = mock_request(cx, &f, true);
            let period = f
                .require(cx, "for", "for: 2s")
                .and_then(|n| duration(cx, n, "for"));
            Some(MockStep::ExpectNone {
                mock,
                request: request?,
                period: period?,
            })
        }
        "set" => {
            let request = mock_request(cx, &f, false);
            let respond = f
                .require(cx, "respond", "respond: { status: 500 }")
                .and_then(|n| {
                    let r = fields(cx, n, "`respond`", &["status", "json"])?;
                    Some(MockResponse {
                        status: r.get("status").and_then(|s| status(cx, s)),
                        json: r.json("json"),
                    })
                });
            Some(MockStep::Set {
                mock,
                request: request?,
                respond: respond?,
            })
        }
        "clear" => Some(MockStep::Clear {
            mock,
            parts: parts(cx, &f)?,
        }),
        _ => {
            let fault = mock_fault(cx, &f, &what)?;
            let times = times(cx, &f)?;
            let ratio = match f.get("ratio") {
                None => None,
                Some(n) => Some(ratio(cx, n)?),
            };
            Some(MockStep::Fault {
                mock,
                method: f.string(cx, "method").map(|m| m.to_ascii_uppercase()),
                path: f.string(cx, "path"),
                fault,
                times,
                ratio,
            })
        }
    }
}

/// The fault kinds a journal entry can name (`tekup_mocks::FaultKind::name`).
const FAULT_NAMES: [&str; 7] = [
    "latency",
    "status",
    "rate-limit",
    "malformed",
    "truncated",
    "reset",
    "stall",
];

/// `answered: { status: 429, fault: rate-limit }` of a `mock: expect` step.
fn answered(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<MockAnswer> {
    let Some(n) = f.get("answered") else {
        return Some(MockAnswer::default());
    };
    let a = fields(
        cx,
        n,
        "`answered` of a `mock: expect` step",
        &["status", "fault"],
    )?;
    let code = match a.get("status") {
        Some(s) => Some(status(cx, s)?),
        None => None,
    };
    let fault = match a.get("fault") {
        None => None,
        Some(node) => {
            let name = string(cx, node, "fault")?;
            if !FAULT_NAMES.contains(&name.as_str()) {
                let guess = closest(&name, &FAULT_NAMES)
                    .map(|k| format!("did you mean `{k}`? "))
                    .unwrap_or_default();
                cx.error(
                    node.pos,
                    format!("unknown fault `{name}`"),
                    format!("{guess}the faults are {}", FAULT_NAMES.join(", ")),
                );
                return None;
            }
            Some(name)
        }
    };
    Some(MockAnswer {
        status: code,
        fault,
    })
}

/// `only: faults` or `only: [journal, faults]` of a `mock: clear` step.
fn parts(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<MockParts> {
    let Some(n) = f.get("only") else {
        return Some(MockParts::ALL);
    };
    let names = match &n.value {
        Value::Seq(_) => string_list(cx, n, "only"),
        _ => vec![(string(cx, n, "only")?, n.pos)],
    };
    let mut parts = MockParts {
        journal: false,
        faults: false,
        expectations: false,
    };
    for (name, pos) in names {
        match name.as_str() {
            "journal" => parts.journal = true,
            "faults" => parts.faults = true,
            "expectations" => parts.expectations = true,
            other => {
                let guess = closest(other, &MockParts::NAMES)
                    .map(|k| format!("did you mean `{k}`? "))
                    .unwrap_or_default();
                cx.error(
                    pos,
                    format!("a mock holds no `{other}` to clear"),
                    format!("{guess}write any of {}", MockParts::NAMES.join(", ")),
                );
                return None;
            }
        }
    }
    if parts
        == (MockParts {
            journal: false,
            faults: false,
            expectations: false,
        })
    {
        cx.error(
            n.pos,
            "`only` names nothing to clear",
            format!(
                "write any of {}, or leave `only` out to clear all",
                MockParts::NAMES.join(", ")
            ),
        );
        return None;
    }
    Some(parts)
}

/// The one fault a `mock: fault` step names: `delay`, `status` (with
/// `retry-after` for a 429, or a `json` body), `stall` (a duration or
/// `forever`), or one of the flags `reset`, `malformed`, `truncated`. These
/// are all the kinds `tekup_mocks::FaultKind` has.
fn mock_fault(cx: &mut Cx<'_>, f: &Fields<'_>, what: &str) -> Option<MockFault> {
    let given: Vec<&str> = [
        "delay",
        "status",
        "stall",
        "reset",
        "malformed",
        "truncated",
    ]
    .into_iter()
    .filter(|k| f.get(k).is_some())
    .collect();
    let hint = "write one of `status: 503`, `status: 429, retry-after: 2s`, `delay: 2s`, \
                `stall: 5s`, `stall: forever`, `reset: true`, `malformed: true`, `truncated: true`";
    if given.first() != Some(&"status") {
        for key in ["retry-after", "json"] {
            if f.get(key).is_some() {
                cx.error(
                    f.key_pos(key).unwrap_or(f.pos),
                    format!("`{key}` goes with `status`"),
                    "remove it, or inject a `status` fault",
                );
                return None;
            }
        }
    }
    match given.as_slice() {
        [] => {
            cx.error(f.pos, format!("{what} needs a fault"), hint);
            None
        }
        [_, second, ..] => {
            cx.error(
                f.key_pos(second).unwrap_or(f.pos),
                format!(
                    "{what} injects one fault; `{}` and `{second}` are both given",
                    given[0]
                ),
                "split it into two steps",
            );
            None
        }
        ["delay"] => f.duration(cx, "delay").map(MockFault::Latency),
        ["stall"] => {
            let n = f.get("stall")?;
            let text = string(cx, n, "stall")?;
            if text == "forever" {
                return Some(MockFault::Stall(None));
            }
            match read::parse_duration(&text) {
                Ok(d) => Some(MockFault::Stall(Some(d))),
                Err(_) => {
                    cx.error(
                        n.pos,
                        format!("`stall` must be a duration or `forever`, found `{text}`"),
                        "write e.g. `stall: 5s`, or `stall: forever` to hold calls until the mock stops",
                    );
                    None
                }
            }
        }
        ["status"] => {
            let code = f.get("status").and_then(|n| status(cx, n))?;
            let json = f.json("json");
            match (code, f.get("retry-after")) {
                (429, Some(_)) if json.is_some() => {
                    cx.error(
                        f.key_pos("json").unwrap_or(f.pos),
                        "a 429 with `retry-after` answers in the API's own shape",
                        "remove `json`, or `retry-after` to answer 429 with this body",
                    );
                    None
                }
                (429, Some(_)) => f
                    .duration(cx, "retry-after")
                    .map(|retry_after| MockFault::RateLimit { retry_after }),
                (_, Some(_)) => {
                    cx.error(
                        f.key_pos("retry-after").unwrap_or(f.pos),
                        "`retry-after` goes with `status: 429`",
                        "remove it, or use `status: 429`",
                    );
                    None
                }
                (status, None) => Some(MockFault::Status { status, json }),
            }
        }
        [flag] => {
            let on = f.get(flag).and_then(|n| boolean(cx, n, flag))?;
            if !on {
                cx.error(
                    f.key_pos(flag).unwrap_or(f.pos),
                    format!("`{flag}: false` injects nothing"),
                    hint,
                );
                return None;
            }
            Some(match *flag {
                "reset" => MockFault::Reset,
                "malformed" => MockFault::Malformed,
                _ => MockFault::Truncated,
            })
        }
    }
}

fn ratio(cx: &mut Cx<'_>, node: &Node) -> Option<f64> {
    let value = node.to_json().as_f64().filter(|r| (0.0..=1.0).contains(r));
    if value.is_none() {
        cx.error(
            node.pos,
            format!(
                "`ratio` must be a number from 0 to 1, found {}",
                node.describe()
            ),
            "write e.g. `ratio: 0.5` for half of the calls",
        );
    }
    value
}

pub(super) fn chaos(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<ChaosStep> {
    let (act, target) = action(
        cx,
        node,
        what,
        &["kill", "pause", "restart", "toxic", "heal"],
    )?;
    let what = format!("`chaos: {act}` step");
    let allowed: &[&str] = match act {
        "pause" => &["pause", "for"],
        "toxic" => &[
            "toxic",
            "link",
            "stream",
            "toxicity",
            "for",
            "latency",
            "jitter",
            "rate",
            "delay",
            "timeout",
            "average-size",
            "size-variation",
            "bytes",
        ],
        "kill" => &["kill"],
        "heal" => &["heal"],
        _ => &["restart"],
    };
    let f = fields(cx, node, &what, allowed)?;
    let name = string(cx, target, act)?;
    match act {
        "kill" => Some(ChaosStep::Kill { component: name }),
        "heal" => Some(ChaosStep::Heal { link: name }),
        "restart" => Some(ChaosStep::Restart { component: name }),
        "pause" => Some(ChaosStep::Pause {
            component: name,
            duration: f.duration(cx, "for"),
        }),
        _ => {
            let toxic = toxic(cx, &f, &name, target)?;
            let link = f.req_string(cx, "link", "link: flow-api->redis");
            let upstream = match f.string(cx, "stream").as_deref() {
                None | Some("downstream") => false,
                Some("upstream") => true,
                Some(other) => {
                    cx.error(
                        f.key_pos("stream").unwrap_or(f.pos),
                        format!("`stream: {other}` is not a direction"),
                        "write `stream: upstream` (from -> to) or `stream: downstream` (to -> from)",
                    );
                    return None;
                }
            };
            let toxicity = match f.get("toxicity") {
                None => None,
                Some(n) => Some(ratio(cx, n)?),
            };
            Some(ChaosStep::Toxic {
                toxic,
                link: link?,
                upstream,
                toxicity,
                duration: f.duration(cx, "for"),
            })
        }
    }
}

/// The toxic named by `toxic: <name>` and its attributes.
fn toxic(cx: &mut Cx<'_>, f: &Fields<'_>, name: &str, at: &Node) -> Option<Toxic> {
    let count = |cx: &mut Cx<'_>, key: &str, default: Option<u64>| -> Option<u64> {
        match f.get(key) {
            Some(n) => uint(cx, n, key, u64::MAX),
            None if default.is_some() => default,
            None => {
                cx.error(
                    f.pos,
                    format!("toxic `{name}` needs `{key}`"),
                    format!("add e.g. `{key}: 64`"),
                );
                None
            }
        }
    };
    let time = |cx: &mut Cx<'_>, key: &str, default: Option<Duration>| -> Option<Duration> {
        match f.get(key) {
            Some(_) => f.duration(cx, key),
            None if default.is_some() => default,
            None => {
                cx.error(
                    f.pos,
                    format!("toxic `{name}` needs `{key}`"),
                    format!("add e.g. `{key}: 500ms`"),
                );
                None
            }
        }
    };
    let zero = Some(Duration::ZERO);
    Some(match name {
        "latency" => Toxic::Latency {
            latency: time(cx, "latency", None)?,
            jitter: time(cx, "jitter", zero)?,
        },
        "bandwidth" => Toxic::Bandwidth {
            rate: count(cx, "rate", None)?,
        },
        "slow-close" => Toxic::SlowClose {
            delay: time(cx, "delay", None)?,
        },
        "timeout" => Toxic::Timeout {
            timeout: time(cx, "timeout", zero)?,
        },
        "reset-peer" => Toxic::ResetPeer {
            timeout: time(cx, "timeout", zero)?,
        },
        "slicer" => Toxic::Slicer {
            average: count(cx, "average-size", None)?,
            variation: count(cx, "size-variation", Some(0))?,
            delay: time(cx, "delay", zero)?,
        },
        "limit-data" => Toxic::LimitData {
            bytes: count(cx, "bytes", None)?,
        },
        "down" => Toxic::Down,
        other => {
            let guess = closest(other, &Toxic::NAMES)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            cx.error(
                at.pos,
                format!("unknown toxic `{other}`"),
                format!("{guess}the toxics are {}", Toxic::NAMES.join(", ")),
            );
            return None;
        }
    })
}
