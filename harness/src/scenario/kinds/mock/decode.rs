//! Decoding a `mock` step: its action, the request it is about, and the
//! one fault a `mock: fault` injects.

use super::{
    MockAnswer, MockFault, MockParts, MockRequest, MockResponse, MockStep, ACTIONS, ANSWERED,
    REQUEST, RESPOND,
};
use crate::scenario::ops::Place;
use crate::scenario::read::{
    self, boolean, closest, duration, keyed, string, string_list, uint, Cx, Fields,
};
use crate::scenario::steps::{self, keyed_action, ratio, status};
use crate::scenario::yaml::{Node, Value};

/// `expected`: the request of `mock: expect` (its `json` may hold
/// operators); `set`'s is matched by the mock itself, literally.
fn mock_request(cx: &mut Cx<'_>, f: &Fields<'_>, expected: bool) -> Option<MockRequest> {
    let Some(n) = f.get("request") else {
        return Some(MockRequest::default());
    };
    let r = keyed(cx, n, "`request` of a `mock` step", &REQUEST)?;
    Some(MockRequest {
        method: r.string(cx, "method").map(|m| m.to_ascii_uppercase()),
        path: r.string(cx, "path"),
        json: if expected {
            r.get("json").map(|n| steps::expected(cx, n, Place::Json))
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

pub(super) fn decode(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<MockStep> {
    let (act, target, keys) = keyed_action(cx, node, what, &ACTIONS)?;
    let what = format!("`mock: {act}` step");
    let f = keyed(cx, node, &what, keys)?;
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
                    let r = keyed(cx, n, "`respond`", &RESPOND)?;
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
pub(super) const FAULT_NAMES: [&str; 7] = [
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
    let a = keyed(cx, n, "`answered` of a `mock: expect` step", &ANSWERED)?;
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
