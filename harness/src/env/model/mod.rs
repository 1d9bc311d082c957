//! The ecosystem file (`fixtures/ecosystem.toml`): what to start and how the
//! components find each other.
//!
//! The file is parsed with spans kept, so every error names the file and the
//! line of the offending key or value: unknown keys, unknown kinds, dangling
//! references, missing programs and dependency cycles. Teams replace the
//! reference services by editing this file only, so its errors are the
//! harness's user interface.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

mod checks;

pub use checks::parse_duration;
use checks::{check_ref, layers, ready, snapshots, waits};

use super::refs::{self, Ref};

/// How long a component may take to become ready when the file says nothing.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// An error in the ecosystem file, located by line.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("failed to read the ecosystem file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// What kind of thing a component is; it decides the default image port,
/// readiness check and the handles the test API offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A PostgreSQL server (process: the machine's binaries; docker: an image
    /// following the official image's `POSTGRES_*` contract).
    Postgres,
    /// A Redis server (`redis-server`).
    Redis,
    /// A long-running program listening on `port` (services, mocks).
    Service,
    /// A program run to completion before its dependants start (migrations).
    Job,
    /// A Prometheus server scraping every service component (mocks
    /// excepted) and evaluating `rules`. Optional: started only when the
    /// run asks for it ([`crate::env::EcosystemBuilder::prometheus`],
    /// `--prometheus`); nothing may depend on it.
    Prometheus,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Service => "service",
            Kind::Job => "job",
            Kind::Prometheus => "prometheus",
        })
    }
}

/// A readiness condition, awaited with a deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// The port accepts TCP connections.
    Tcp,
    /// `GET <path>` answers 2xx.
    Http(String),
    /// The component's log contains this text.
    Log(String),
    /// A query succeeds (Postgres components).
    Postgres,
    /// `PING` answers (Redis components).
    Redis,
    /// The job exited with status 0.
    Exited,
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ready::Tcp => f.write_str("TCP connect"),
            Ready::Http(path) => write!(f, "HTTP GET {path} answering 2xx"),
            Ready::Log(line) => write!(f, "log line {line:?}"),
            Ready::Postgres => f.write_str("a Postgres query succeeding"),
            Ready::Redis => f.write_str("Redis answering PING"),
            Ready::Exited => f.write_str("the job exiting with status 0"),
        }
    }
}

/// A value that may hold `${...}` references, with where it was written.
#[derive(Debug, Clone)]
pub struct Template {
    /// The raw text.
    pub text: String,
    /// Its parsed references.
    pub refs: Vec<Ref>,
    /// 1-based line in the ecosystem file.
    pub line: usize,
}

/// One component of the ecosystem, validated.
#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    pub kind: Kind,
    /// Program to run (process runtime; copied into the image by docker).
    pub program: Option<String>,
    /// Cargo package that builds `program`, when it is part of this workspace.
    pub cargo_package: Option<String>,
    /// Cargo features that build needs (`cargo build --features ...`).
    pub cargo_features: Vec<String>,
    /// Image for the docker runtime (an official one for users with a registry).
    pub image: Option<String>,
    /// Image built offline by `tekup-harness images build`, used when `image` is absent locally.
    pub offline_image: Option<String>,
    pub args: Vec<Template>,
    pub env: BTreeMap<String, Template>,
    /// The port the component listens on inside its container (the process
    /// runtime assigns a free one instead).
    pub port: Option<u16>,
    pub ready: Ready,
    pub ready_timeout: Duration,
    /// Explicit and implied (by references) dependencies.
    pub depends_on: BTreeSet<String>,
    /// The dependencies that must be ready (jobs: finished) before this one
    /// starts: `wait-for` when the file gives it, else all of `depends_on`.
    /// One it does not wait for starts alongside it: its address is known
    /// from the start, and it is called only once requests come.
    pub wait_for: BTreeSet<String>,
    /// The dependencies it waits for by itself at start (`waits-itself-for`:
    /// it retries its connection until they answer, with a deadline of its
    /// own), so the runtime need not hold it back for them. Never in
    /// `wait_for`. A snapshot job of one of them (see [`Self::snapshot`])
    /// is still in `wait_for`; a runtime that replays the job instead of
    /// running it starts this component beside the Postgres: the job's
    /// result is there from the Postgres's first answer.
    pub waits_itself_for: BTreeSet<String>,
    /// Path of the admin API (mocks), making `admin_url` available.
    pub admin_path: Option<String>,
    /// Postgres only: database, user and password.
    pub database: String,
    pub user: String,
    pub password: Option<Template>,
    /// Prometheus only: rule files (paths next to the ecosystem file).
    pub rules: Vec<PathBuf>,
    /// Prometheus only: the components it scrapes (`GET /metrics`): every
    /// service without `admin-path` (the mocks stand in for external APIs
    /// and have no metrics).
    pub scrape: Vec<String>,
    /// Jobs only: the Postgres component this job changes and nothing
    /// else (`snapshot = "postgres"`). The process and docker runtimes
    /// keep that Postgres's data once the job has run, keyed by the job's
    /// inputs, and later start from it instead of running the job again
    /// (`super::snapshot`).
    pub snapshot: Option<String>,
    /// Line of the `[component.<name>]` header.
    pub line: usize,
}

impl Component {
    /// The images a container runtime may run it from, in order of
    /// preference: `image`, then `offline-image`.
    pub fn images(&self) -> impl Iterator<Item = &String> {
        self.image.iter().chain(&self.offline_image)
    }
}

/// The validated ecosystem file.
#[derive(Debug, Clone)]
pub struct EcosystemFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The directory `${file:...}` paths are relative to.
    pub base_dir: PathBuf,
    pub vars: BTreeMap<String, String>,
    pub components: BTreeMap<String, Component>,
    /// The dependency order, coarse: each inner list depends only on the
    /// earlier ones. (A component starts as soon as what it waits for is
    /// ready, see [`Component::wait_for`].)
    pub layers: Vec<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    #[serde(default)]
    vars: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    component: BTreeMap<String, Spanned<RawComponent>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawComponent {
    #[serde(default)]
    kind: Option<Kind>,
    program: Option<String>,
    cargo_package: Option<String>,
    #[serde(default)]
    cargo_features: Vec<String>,
    image: Option<String>,
    offline_image: Option<String>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    port: Option<u16>,
    ready: Option<Spanned<RawReady>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    wait_for: Option<Vec<Spanned<String>>>,
    waits_itself_for: Option<Vec<Spanned<String>>>,
    admin_path: Option<String>,
    database: Option<String>,
    user: Option<String>,
    password: Option<Spanned<String>>,
    #[serde(default)]
    rules: Vec<Spanned<String>>,
    snapshot: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawReady {
    tcp: Option<bool>,
    http: Option<String>,
    log: Option<String>,
    timeout: Option<String>,
}

/// Locates errors in one file's text.
struct Locator<'a> {
    file: String,
    text: &'a str,
}

impl Locator<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, column)
    }

    fn line(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ModelError {
        let (line, column) = self.line_col(offset);
        ModelError::Invalid {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl EcosystemFile {
    /// Reads and validates an ecosystem file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates the text of an ecosystem file; `path` names it in errors
    /// and anchors `${file:...}` references.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ModelError> {
        let at = Locator {
            file: path.display().to_string(),
            text,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at.error(offset, e.message().trim().to_owned())
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let vars: BTreeMap<String, String> = raw
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect();
        let names: BTreeSet<String> = raw.component.keys().cloned().collect();
        let mut components = BTreeMap::new();
        for (name, spanned) in &raw.component {
            let header = at.line(spanned.span().start);
            let c = build_component(&at, name, header, spanned, &names, &vars, &base_dir)?;
            components.insert(name.clone(), c);
        }
        prometheus_scrapes(&at, &raw, &mut components)?;
        snapshots(&at, &raw, &components)?;
        let layers = layers(&at, &raw, &components)?;
        Ok(Self {
            path: path.to_owned(),
            base_dir,
            vars,
            components,
            layers,
        })
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.get(name)
    }

    /// Leaves out the optional components (`kind = "prometheus"`), for a
    /// run that did not ask for them. Nothing depends on them (the file is
    /// refused otherwise), so the start order stays valid.
    pub fn without_optional(&mut self) {
        self.components.retain(|_, c| c.kind != Kind::Prometheus);
        for layer in &mut self.layers {
            layer.retain(|name| self.components.contains_key(name));
        }
        self.layers.retain(|layer| !layer.is_empty());
    }

    /// The links `(from, to)` between components: `from` references the
    /// `host`, `port`, `url` or `admin-url` of `to` (which listens on a
    /// port) in its args or env. Under the process runtime each gets a fault
    /// proxy (see `crate::chaos::links`).
    pub fn links(&self) -> BTreeSet<(String, String)> {
        let mut links = BTreeSet::new();
        for c in self.components.values() {
            let refs = c.args.iter().chain(c.env.values()).flat_map(|t| &t.refs);
            for r in refs {
                let Ref::Component { component, attr } = r else {
                    continue;
                };
                let listens = self
                    .components
                    .get(component)
                    .is_some_and(|to| to.kind != Kind::Job && to.port.is_some());
                if listens && LINK_ATTRS.contains(&attr.as_str()) {
                    links.insert((c.name.clone(), component.clone()));
                }
            }
        }
        links
    }
}

/// Gives each Prometheus component what it scrapes (and so starts after),
/// and refuses a component that depends on one: it is optional.
fn prometheus_scrapes(
    at: &Locator<'_>,
    raw: &RawFile,
    components: &mut BTreeMap<String, Component>,
) -> Result<(), ModelError> {
    let optional: BTreeSet<String> = components
        .values()
        .filter(|c| c.kind == Kind::Prometheus)
        .map(|c| c.name.clone())
        .collect();
    for c in components.values() {
        if let Some(dep) = c.depends_on.iter().find(|d| optional.contains(*d)) {
            return Err(at.error(
                raw.component[&c.name].span().start,
                format!("component `{}` depends on `{dep}`, a Prometheus, which starts only when a run asks for it (--prometheus); nothing may depend on it", c.name),
            ));
        }
    }
    let scraped: Vec<String> = components
        .values()
        .filter(|c| c.kind == Kind::Service && c.admin_path.is_none())
        .map(|c| c.name.clone())
        .collect();
    for name in &optional {
        if let Some(c) = components.get_mut(name) {
            c.scrape.clone_from(&scraped);
            c.depends_on.extend(scraped.iter().cloned());
            c.wait_for.extend(scraped.iter().cloned());
        }
    }
    Ok(())
}

/// The attributes of a component that say where it listens.
const LINK_ATTRS: &[&str] = &["host", "port", "url", "admin-url"];

fn build_component(
    at: &Locator<'_>,
    name: &str,
    header: usize,
    spanned: &Spanned<RawComponent>,
    names: &BTreeSet<String>,
    vars: &BTreeMap<String, String>,
    base_dir: &Path,
) -> Result<Component, ModelError> {
    let raw = spanned.get_ref();
    let start = spanned.span().start;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(at.error(
            start,
            format!("component name {name:?} must be lower-case letters, digits and `-`"),
        ));
    }
    let kind = raw.kind.unwrap_or(Kind::Service);
    let mut depends_on = BTreeSet::new();
    let template = |value: &Spanned<String>, depends: &mut BTreeSet<String>| {
        let offset = value.span().start;
        let refs = refs::parse(value.get_ref()).map_err(|m| at.error(offset, m))?;
        for r in &refs {
            check_ref(r, kind, name, names, vars, base_dir).map_err(|m| at.error(offset, m))?;
            if let Ref::Component { component, .. } = r {
                depends.insert(component.clone());
            }
        }
        Ok::<_, ModelError>(Template {
            text: value.get_ref().clone(),
            refs,
            line: at.line(offset),
        })
    };
    let args = raw
        .args
        .iter()
        .map(|a| template(a, &mut depends_on))
        .collect::<Result<Vec<_>, _>>()?;
    let mut env = BTreeMap::new();
    for (key, value) in &raw.env {
        env.insert(key.clone(), template(value, &mut depends_on)?);
    }
    let password = raw
        .password
        .as_ref()
        .map(|p| template(p, &mut depends_on))
        .transpose()?;
    for dep in &raw.depends_on {
        if !names.contains(dep.get_ref()) {
            return Err(at.error(
                dep.span().start,
                format!(
                    "`depends-on` names {:?}, which is not a component (known: {})",
                    dep.get_ref(),
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if dep.get_ref() == name {
            return Err(at.error(dep.span().start, "a component cannot depend on itself"));
        }
        depends_on.insert(dep.get_ref().clone());
    }
    let (wait_for, waits_itself_for) = waits(at, name, raw, &depends_on)?;
    let (ready, ready_timeout) = ready(at, kind, raw, start)?;
    match kind {
        Kind::Service | Kind::Job if raw.program.is_none() => {
            return Err(at.error(
                start,
                format!("component `{name}` ({kind}) needs `program` (a binary name or path)"),
            ))
        }
        Kind::Service if raw.port.is_none() => {
            return Err(at.error(
                start,
                format!("component `{name}` (service) needs `port` (its port inside a container; the process runtime picks a free one)"),
            ))
        }
        _ => {}
    }
    if kind != Kind::Prometheus {
        if let Some(rule) = raw.rules.first() {
            return Err(at.error(
                rule.span().start,
                format!("`rules` is for a Prometheus component; `{name}` is a {kind}"),
            ));
        }
    }
    let mut rules = Vec::new();
    for rule in &raw.rules {
        let path = base_dir.join(rule.get_ref());
        if !path.is_file() {
            return Err(at.error(
                rule.span().start,
                format!(
                    "`rules` names {}, which is not a file (paths are relative to the ecosystem file)",
                    path.display()
                ),
            ));
        }
        rules.push(path);
    }
    let (default_port, default_user) = match kind {
        Kind::Postgres => (Some(5432), "postgres"),
        Kind::Redis => (Some(6379), ""),
        Kind::Prometheus => (Some(9090), ""),
        _ => (None, ""),
    };
    Ok(Component {
        name: name.to_owned(),
        kind,
        program: raw.program.clone(),
        cargo_package: raw.cargo_package.clone(),
        cargo_features: raw.cargo_features.clone(),
        image: raw.image.clone(),
        offline_image: raw.offline_image.clone(),
        args,
        env,
        port: raw.port.or(default_port),
        ready,
        ready_timeout,
        depends_on,
        wait_for,
        waits_itself_for,
        admin_path: raw.admin_path.clone(),
        database: raw.database.clone().unwrap_or_else(|| "postgres".into()),
        user: raw.user.clone().unwrap_or_else(|| default_user.into()),
        password,
        rules,
        scrape: Vec::new(),
        snapshot: raw.snapshot.as_ref().map(|s| s.get_ref().clone()),
        line: header,
    })
}
