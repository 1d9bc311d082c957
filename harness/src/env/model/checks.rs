//! Checks of the ecosystem file beyond its shape: readiness, references,
//! and the start order (cycles).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::super::refs::{self, Ref};
use super::{
    Component, Kind, Locator, ModelError, RawComponent, RawFile, Ready, DEFAULT_READY_TIMEOUT,
};

pub(super) fn ready(
    at: &Locator<'_>,
    kind: Kind,
    raw: &RawComponent,
    start: usize,
) -> Result<(Ready, Duration), ModelError> {
    let Some(spanned) = &raw.ready else {
        let ready = match kind {
            Kind::Postgres => Ready::Postgres,
            Kind::Redis => Ready::Redis,
            Kind::Job => Ready::Exited,
            Kind::Prometheus => Ready::Http("/-/ready".into()),
            Kind::Service => {
                return Err(at.error(
                    start,
                    "a service needs `ready` (`{ tcp = true }`, `{ http = \"/health\" }` or `{ log = \"...\" }`)",
                ))
            }
        };
        return Ok((ready, DEFAULT_READY_TIMEOUT));
    };
    let r = spanned.get_ref();
    let offset = spanned.span().start;
    let timeout = match &r.timeout {
        Some(t) => parse_duration(t).map_err(|m| at.error(offset, m))?,
        None => DEFAULT_READY_TIMEOUT,
    };
    let mut chosen = Vec::new();
    if r.tcp == Some(true) {
        chosen.push(Ready::Tcp);
    }
    if let Some(path) = &r.http {
        chosen.push(Ready::Http(path.clone()));
    }
    if let Some(line) = &r.log {
        chosen.push(Ready::Log(line.clone()));
    }
    match (chosen.len(), kind) {
        (0, Kind::Postgres) => Ok((Ready::Postgres, timeout)),
        (0, Kind::Redis) => Ok((Ready::Redis, timeout)),
        (0, Kind::Job) => Ok((Ready::Exited, timeout)),
        (1, Kind::Job) => {
            Err(at.error(offset, "a job is ready when it exits; give only `timeout`"))
        }
        (1, _) => Ok((chosen.remove(0), timeout)),
        _ => Err(at.error(
            offset,
            "`ready` needs exactly one of `tcp = true`, `http = \"/path\"`, `log = \"text\"`",
        )),
    }
}

/// Parses `500ms`, `30s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. `30s`, `500ms`, `2m`"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!(
            "invalid duration {text:?}: the unit must be ms, s or m"
        )),
    }
}

pub(super) fn check_ref(
    r: &Ref,
    kind: Kind,
    me: &str,
    names: &BTreeSet<String>,
    vars: &BTreeMap<String, String>,
    base_dir: &Path,
) -> Result<(), String> {
    match r {
        Ref::Var(var) if !vars.contains_key(var) => Err(format!(
            "`${{vars.{var}}}` refers to a variable that [vars] does not define"
        )),
        Ref::Var(_) => Ok(()),
        Ref::File(file) if !base_dir.join(file).exists() => Err(format!(
            "`${{file:{file}}}` refers to {}, which does not exist",
            base_dir.join(file).display()
        )),
        Ref::File(_) => Ok(()),
        Ref::Own(attr) => refs::check_own_attr(attr, kind),
        Ref::Otlp(attr) => refs::check_otlp_attr(attr),
        Ref::Component { component, .. } if component == me => Err(format!(
            "`${{{component}...}}` refers to this component itself; use `${{self...}}`"
        )),
        Ref::Component { component, attr } => {
            if !names.contains(component) {
                return Err(format!(
                    "`${{{component}.{attr}}}` refers to component `{component}`, which the file does not define (known: {})",
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            refs::check_component_attr(component, attr)
        }
    }
}

/// Orders the components so every one starts after what it depends on.
pub(super) fn layers(
    at: &Locator<'_>,
    raw: &RawFile,
    components: &BTreeMap<String, Component>,
) -> Result<Vec<Vec<String>>, ModelError> {
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut layers = Vec::new();
    while placed.len() < components.len() {
        let layer: Vec<String> = components
            .values()
            .filter(|c| !placed.contains(&c.name))
            .filter(|c| c.depends_on.iter().all(|d| placed.contains(d)))
            .map(|c| c.name.clone())
            .collect();
        if layer.is_empty() {
            let stuck: Vec<&str> = components
                .keys()
                .filter(|n| !placed.contains(*n))
                .map(String::as_str)
                .collect();
            let offset = raw.component[stuck[0]].span().start;
            return Err(at.error(
                offset,
                format!(
                    "dependency cycle among components {} (through `depends-on` and `${{...}}` references)",
                    stuck.join(", ")
                ),
            ));
        }
        placed.extend(layer.iter().cloned());
        layers.push(layer);
    }
    Ok(layers)
}
