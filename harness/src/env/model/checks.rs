//! Checks of the ecosystem file beyond its shape: readiness, references,
//! and the start order (cycles).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

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

/// `wait-for` (default: every dependency) and `waits-itself-for` of one
/// component: each names a dependency of it, and none both (what a
/// component waits for by itself, the runtime does not hold it back for;
/// left out of the default `wait-for`).
pub(super) fn waits(
    at: &Locator<'_>,
    name: &str,
    raw: &RawComponent,
    depends_on: &BTreeSet<String>,
) -> Result<(BTreeSet<String>, BTreeSet<String>), ModelError> {
    let dependency = |key: &str, w: &Spanned<String>| {
        if depends_on.contains(w.get_ref()) {
            return Ok(w.get_ref().clone());
        }
        Err(at.error(
            w.span().start,
            format!(
                "`{key}` names {:?}, which `{name}` neither references nor lists in `depends-on` (its dependencies: {})",
                w.get_ref(),
                if depends_on.is_empty() {
                    "none".to_owned()
                } else {
                    depends_on.iter().cloned().collect::<Vec<_>>().join(", ")
                }
            ),
        ))
    };
    let itself = raw
        .waits_itself_for
        .iter()
        .flatten()
        .map(|w| dependency("waits-itself-for", w))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let wait_for = match &raw.wait_for {
        None => depends_on.difference(&itself).cloned().collect(),
        Some(names) => {
            let mut wait_for = BTreeSet::new();
            for w in names {
                let dep = dependency("wait-for", w)?;
                if itself.contains(&dep) {
                    return Err(at.error(
                        w.span().start,
                        format!("`{name}` lists {dep:?} in both `wait-for` and `waits-itself-for`; a component waits for a dependency by itself, or the runtime holds it back until the dependency is ready, not both"),
                    ));
                }
                wait_for.insert(dep);
            }
            wait_for
        }
    };
    Ok((wait_for, itself))
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

/// A job's `snapshot = "<postgres>"`: the job must wait for that Postgres
/// and reference no other component (its result may depend on nothing
/// else), one job per Postgres, and every other component that references
/// the Postgres must wait for the job (the runtime restarts the Postgres
/// once, right after the job, to keep its data). One that waits for the
/// Postgres by itself (`waits-itself-for`) still waits for the job: a
/// runtime lets it start beside the Postgres only when the job is
/// replayed, not run (see `Component::waits_itself_for`).
pub(super) fn snapshots(
    at: &Locator<'_>,
    raw: &RawFile,
    components: &BTreeMap<String, Component>,
) -> Result<(), ModelError> {
    let mut taken: BTreeMap<&str, &str> = BTreeMap::new();
    for job in components.values() {
        let Some(postgres) = job.snapshot.as_deref() else {
            continue;
        };
        let offset = raw.component[&job.name]
            .get_ref()
            .snapshot
            .as_ref()
            .map_or(0, |s| s.span().start);
        let fail = |message: String| Err(at.error(offset, message));
        if job.kind != Kind::Job {
            return fail(format!(
                "`snapshot` is for a job; `{}` is a {}",
                job.name, job.kind
            ));
        }
        match components.get(postgres) {
            Some(c) if c.kind == Kind::Postgres => {}
            _ => {
                return fail(format!(
                    "`snapshot` names {postgres:?}, which is not a Postgres component"
                ))
            }
        }
        if !job.wait_for.contains(postgres) {
            return fail(format!(
                "`{}` keeps a snapshot of `{postgres}` but does not wait for it",
                job.name
            ));
        }
        if let Some(other) = job.depends_on.iter().find(|d| d.as_str() != postgres) {
            return fail(format!(
                "`{}` keeps a snapshot of `{postgres}`, so it may depend on nothing else; it depends on `{other}`, and its result could change with it",
                job.name
            ));
        }
        if let Some(first) = taken.insert(postgres, &job.name) {
            return fail(format!(
                "`{postgres}` already has a snapshot job, `{first}`; one job per Postgres"
            ));
        }
        if let Some(other) = components.values().find(|c| {
            c.name != job.name && c.depends_on.contains(postgres) && !c.wait_for.contains(&job.name)
        }) {
            return fail(format!(
                "`{}` uses `{postgres}` without waiting for `{}`: the runtime restarts `{postgres}` right after the job to keep its data, so everything that uses it must wait for the job (`wait-for`)",
                other.name, job.name
            ));
        }
    }
    Ok(())
}
