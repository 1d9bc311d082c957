//! The step kinds that act on or look into the ecosystem's parts beside
//! HTTP: Redis, the external API mocks, and chaos faults.

use super::super::model::{ChaosStep, MockRequest, MockResponse, MockStep, RedisStep, Toxic};
use super::super::read::{boolean, closest, fields, string, uint, Cx, Fields};
use super::super::yaml::Node;
use super::{action, status};

pub(super) fn redis(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<RedisStep> {
    let (act, target) = action(cx, node, what, &["queue", "key"])?;
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

fn mock_request(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<MockRequest> {
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
        json: r.json("json"),
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
    let (act, target) = action(cx, node, what, &["expect", "set", "fault"])?;
    let what = format!("`mock: {act}` step");
    let allowed: &[&str] = match act {
        "expect" => &["expect", "request", "times"],
        "set" => &["set", "request", "respond"],
        _ => &["fault", "path", "status", "delay", "times"],
    };
    let f = fields(cx, node, &what, allowed)?;
    let mock = string(cx, target, act)?;
    match act {
        "expect" => {
            let request = mock_request(cx, &f);
            let times = times(cx, &f);
            Some(MockStep::Expect {
                mock,
                request: request?,
                times: times?,
            })
        }
        "set" => {
            let request = mock_request(cx, &f);
            let respond = f
                .require(cx, "respond", "respond: { status: 500 }")
                .and_then(|n| {
                    let r = fields(cx, n, "`respond`", &["status", "json", "headers"])?;
                    Some(MockResponse {
                        status: r.get("status").and_then(|s| status(cx, s)),
                        json: r.json("json"),
                        headers: r.string_map(cx, "headers"),
                    })
                });
            Some(MockStep::Set {
                mock,
                request: request?,
                respond: respond?,
            })
        }
        _ => {
            let status = f.get("status").and_then(|s| status(cx, s));
            let delay = f.duration(cx, "delay");
            if f.get("status").is_none() && f.get("delay").is_none() {
                cx.error(
                    f.pos,
                    format!("{what} needs `status` or `delay`"),
                    "add e.g. `status: 503` or `delay: 2s`",
                );
                return None;
            }
            let times = times(cx, &f)?;
            Some(MockStep::Fault {
                mock,
                path: f.string(cx, "path"),
                status,
                delay,
                times,
            })
        }
    }
}

pub(super) fn chaos(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<ChaosStep> {
    let (act, target) = action(cx, node, what, &["kill", "pause", "restart", "toxic"])?;
    let what = format!("`chaos: {act}` step");
    let allowed: &[&str] = match act {
        "pause" => &["pause", "for"],
        "toxic" => &["toxic", "link", "latency", "for"],
        "kill" => &["kill"],
        _ => &["restart"],
    };
    let f = fields(cx, node, &what, allowed)?;
    let name = string(cx, target, act)?;
    match act {
        "kill" => Some(ChaosStep::Kill { component: name }),
        "restart" => Some(ChaosStep::Restart { component: name }),
        "pause" => Some(ChaosStep::Pause {
            component: name,
            duration: f.duration(cx, "for"),
        }),
        _ => {
            let toxic = match name.as_str() {
                "latency" => Toxic::Latency,
                "reset" => Toxic::Reset,
                "timeout" => Toxic::Timeout,
                other => {
                    let guess = closest(other, &["latency", "reset", "timeout"])
                        .map(|k| format!("did you mean `{k}`? "))
                        .unwrap_or_default();
                    cx.error(
                        target.pos,
                        format!("unknown toxic `{other}`"),
                        format!("{guess}the toxics are latency, reset, timeout"),
                    );
                    return None;
                }
            };
            let link = f.req_string(cx, "link", "link: flow-api->redis");
            let latency = f.duration(cx, "latency");
            if toxic == Toxic::Latency && f.get("latency").is_none() {
                cx.error(
                    f.pos,
                    format!("{what} `latency` needs `latency`"),
                    "add e.g. `latency: 500ms`",
                );
                return None;
            }
            Some(ChaosStep::Toxic {
                toxic,
                link: link?,
                latency,
                duration: f.duration(cx, "for"),
            })
        }
    }
}
