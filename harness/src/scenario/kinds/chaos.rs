//! The `chaos` step: faults on the ecosystem's components (kill, pause,
//! restart) and on the links between them (a toxic on the fault proxy of
//! a link, or healing it). What a run breaks is put back at its end; a
//! scenario with a `chaos` step runs with the ecosystem alone.

use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::{KindDef, StepCx, StepError};
use crate::scenario::model::Need;
use crate::scenario::read::{closest, keyed, string, uint, Cx, Fields};
use crate::scenario::schema::{self, Key};
use crate::scenario::steps::{keyed_action, ratio};
use crate::scenario::vars::Scope;
use crate::scenario::yaml::Node;

/// A network fault on a link between two components, on the Toxiproxy
/// model (`harness/src/chaos`).
#[derive(Debug, Clone, PartialEq)]
pub enum Toxic {
    /// Data is delayed by `latency` ± `jitter`.
    Latency { latency: Duration, jitter: Duration },
    /// Data flows at most at `rate` KB/s.
    Bandwidth { rate: u64 },
    /// The close of a connection is delayed.
    SlowClose { delay: Duration },
    /// Data stops; the connection is closed after `timeout` (never when 0).
    Timeout { timeout: Duration },
    /// The connection is reset (TCP RST) after `timeout`.
    ResetPeer { timeout: Duration },
    /// Data is cut into pieces of about `average` ± `variation` bytes, `delay` apart.
    Slicer {
        average: u64,
        variation: u64,
        delay: Duration,
    },
    /// The connection is closed after `bytes` bytes.
    LimitData { bytes: u64 },
    /// The link is down: connections are refused and cut.
    Down,
}

impl Toxic {
    /// The names a file uses.
    pub const NAMES: [&'static str; 8] = [
        "latency",
        "bandwidth",
        "slow-close",
        "timeout",
        "reset-peer",
        "slicer",
        "limit-data",
        "down",
    ];
}

/// A fault on a component or a link.
#[derive(Debug, Clone, PartialEq)]
pub enum ChaosStep {
    Kill {
        component: String,
    },
    Pause {
        component: String,
        duration: Option<Duration>,
    },
    Restart {
        component: String,
    },
    /// Removes every toxic from a link and brings it up again.
    Heal {
        link: String,
    },
    Toxic {
        toxic: Toxic,
        /// `from->to`, e.g. `flow-api->redis`.
        link: String,
        /// `upstream` (from → to) or `downstream` (to → from, the default).
        upstream: bool,
        /// The share of connections it applies to (default 1).
        toxicity: Option<f64>,
        /// How long it stays; until the scenario ends when absent.
        duration: Option<Duration>,
    },
}

/// The actions of a `chaos` step, each with its keys.
const ACTIONS: [(&str, &[Key]); 5] = [
    (
        "kill",
        &[Key::new("kill", schema::text)
            .help("The component killed (restarted at the run's end).")],
    ),
    (
        "pause",
        &[
            Key::new("pause", schema::text).help("The component paused (SIGSTOP)."),
            Key::new("for", schema::duration)
                .help("Resumed after this long; at the run's end otherwise."),
        ],
    ),
    (
        "restart",
        &[Key::new("restart", schema::text).help("Restarted, and waited for until ready.")],
    ),
    (
        "heal",
        &[Key::new("heal", schema::text).help("The link whose toxics are removed.")],
    ),
    (
        "toxic",
        &[
            Key::new("toxic", toxic_names),
            Key::new("link", schema::text)
                .required()
                .help("`from->to`, e.g. `flow-api->redis`."),
            Key::new("stream", stream_names)
                .help("`upstream` (from → to) or `downstream` (the default)."),
            Key::new("toxicity", schema::share)
                .help("The share of connections it applies to (default 1)."),
            Key::new("for", schema::duration)
                .help("How long it stays; until the scenario ends when left out."),
            Key::new("latency", schema::duration),
            Key::new("jitter", schema::duration),
            Key::new("rate", schema::count).help("KB/s, for `bandwidth`."),
            Key::new("delay", schema::duration),
            Key::new("timeout", schema::duration),
            Key::new("average-size", schema::count),
            Key::new("size-variation", schema::count),
            Key::new("bytes", schema::count),
        ],
    ),
];

fn toxic_names() -> Json {
    json!({ "enum": Toxic::NAMES })
}

fn stream_names() -> Json {
    json!({ "enum": ["upstream", "downstream"] })
}

impl KindDef for ChaosStep {
    const NAME: &'static str = "chaos";
    const ABOUT: &'static str =
        "A fault on a component (`kill`, `pause`, `restart`) or on a link (`toxic`, `heal`); put back at the run's end.";

    fn decode(cx: &mut Cx<'_>, node: &Node, _scope: &mut Scope) -> Option<Self> {
        decode(cx, node, "`chaos` step")
    }

    fn schema() -> Json {
        schema::actions(&ACTIONS)
    }

    fn label(&self) -> String {
        match self {
            ChaosStep::Kill { component } => format!("chaos kill {component}"),
            ChaosStep::Pause { component, .. } => format!("chaos pause {component}"),
            ChaosStep::Restart { component } => format!("chaos restart {component}"),
            ChaosStep::Toxic { toxic, link, .. } => format!("chaos {toxic:?} on {link}"),
            ChaosStep::Heal { link } => format!("chaos heal {link}"),
        }
    }

    fn natural_wait(&self) -> Duration {
        match self {
            ChaosStep::Pause {
                duration: Some(d), ..
            } => *d,
            // A restart waits for readiness, which has its own deadline.
            _ => Duration::from_secs(90),
        }
    }

    fn needs(&self) -> Option<Need> {
        match self {
            ChaosStep::Kill { .. } | ChaosStep::Pause { .. } | ChaosStep::Restart { .. } => {
                Some(Need::Faults)
            }
            ChaosStep::Toxic { .. } | ChaosStep::Heal { .. } => Some(Need::Links),
        }
    }

    fn alone(&self) -> bool {
        true
    }

    fn acts(&self) -> Option<&'static str> {
        Some("injects a fault")
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        run(cx, self).await
    }
}

fn decode(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<ChaosStep> {
    let (act, target, keys) = keyed_action(cx, node, what, &ACTIONS)?;
    let what = format!("`chaos: {act}` step");
    let f = keyed(cx, node, &what, keys)?;
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

async fn run(cx: &mut StepCx<'_, '_>, step: &ChaosStep) -> Result<(), StepError> {
    let started = Instant::now();
    let (name, label) = match step {
        ChaosStep::Kill { component } => (component, "kill"),
        ChaosStep::Pause { component, .. } => (component, "pause"),
        ChaosStep::Restart { component } => (component, "restart"),
        ChaosStep::Toxic { .. } | ChaosStep::Heal { .. } => {
            let result = run_toxic(cx, step).await;
            cx.waited(started.elapsed());
            return result;
        }
    };
    let component = cx.component(name)?;
    cx.involve(&name.clone());
    cx.observe_fault("harness", name, label);
    let result = match step {
        ChaosStep::Kill { .. } => {
            cx.cleanup.killed.insert(name.clone());
            component.kill().await
        }
        ChaosStep::Pause { duration, .. } => {
            cx.cleanup.paused.insert(name.clone());
            let paused = component.pause().await;
            match (paused, duration) {
                (Ok(()), Some(d)) => {
                    tokio::time::sleep(*d).await;
                    let resumed = component.resume().await;
                    if resumed.is_ok() {
                        cx.cleanup.paused.remove(name);
                    }
                    resumed
                }
                (other, _) => other,
            }
        }
        ChaosStep::Restart { .. } => {
            let restarted = component.restart().await;
            if restarted.is_ok() {
                cx.cleanup.killed.remove(name);
                cx.cleanup.paused.remove(name);
            }
            restarted.map(|_| ())
        }
        ChaosStep::Toxic { .. } | ChaosStep::Heal { .. } => Ok(()),
    };
    cx.waited(started.elapsed());
    result
        .map_err(|e| StepError::from(format!("{label} `{name}`: {}", crate::env::error_chain(&e))))
}
/// A toxic on a link (or healing one): through the ecosystem's fault
/// proxies, which exist under the process runtime.
async fn run_toxic(cx: &mut StepCx<'_, '_>, step: &ChaosStep) -> Result<(), StepError> {
    let (link, toxic) = match step {
        ChaosStep::Toxic { link, .. } => (link, Some(step)),
        ChaosStep::Heal { link } => (link, None),
        _ => return Ok(()),
    };
    let link = cx.values.text(link)?;
    let proxy = cx
        .eco()
        .link_named(&link)
        .map_err(|e| StepError::from(crate::env::error_chain(&e)))?;
    cx.cleanup.links = true;
    let parts = link
        .split_once("->")
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
    let (from, to) = parts.unwrap_or_else(|| (link.clone(), link.clone()));
    cx.involve(&from.clone());
    cx.involve(&to.clone());
    let Some(ChaosStep::Toxic {
        toxic,
        upstream,
        toxicity,
        duration,
        ..
    }) = toxic
    else {
        cx.observe_fault(&from, &to, "heal");
        proxy.reset().map_err(|e| StepError::from(e.to_string()))?;
        return proxy.enable().map_err(|e| StepError::from(e.to_string()));
    };
    cx.observe_fault(&from, &to, &format!("{toxic:?}"));
    let name = cx.correlation_id();
    let undo: Box<dyn Fn() -> Result<(), crate::chaos::ChaosError> + Send + Sync> =
        match proxy_toxic(toxic) {
            None => {
                proxy
                    .disable()
                    .map_err(|e| StepError::from(e.to_string()))?;
                Box::new(|| proxy.enable())
            }
            Some(mut t) => {
                t = t.named(name.clone());
                if *upstream {
                    t = t.upstream();
                }
                if let Some(x) = toxicity {
                    t = t.toxicity(*x);
                }
                proxy.add(t).map_err(|e| StepError::from(e.to_string()))?;
                let name = name.clone();
                Box::new(move || proxy.remove(&name))
            }
        };
    if let Some(d) = duration {
        tokio::time::sleep(*d).await;
        undo().map_err(|e| StepError::from(e.to_string()))?;
    }
    Ok(())
}

/// The fault proxy's form of a scenario's toxic; `None` for `down`, which
/// disables the proxy instead.
fn proxy_toxic(toxic: &Toxic) -> Option<crate::chaos::Toxic> {
    use crate::chaos::Toxic as T;
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Some(match toxic {
        Toxic::Latency { latency, jitter } => T::latency(*latency, *jitter),
        Toxic::Bandwidth { rate } => T::bandwidth(*rate),
        Toxic::SlowClose { delay } => T::slow_close(*delay),
        Toxic::Timeout { timeout } => T::timeout(*timeout),
        Toxic::ResetPeer { timeout } => T::reset_peer(*timeout),
        Toxic::Slicer {
            average,
            variation,
            delay,
        } => T::slicer(size(*average), size(*variation), *delay),
        Toxic::LimitData { bytes } => T::limit_data(*bytes),
        Toxic::Down => return None,
    })
}
