//! The platform's contract as data: what every implementation promises.
//!
//! The harness's oracle. The property model, the chaos invariants, the
//! scenario steps that speak the queues' format and the sweep take their
//! expectations from here (`fixtures/platform.yaml` for the reference
//! platform, a team's own file with `--contract` or `TEKUP_CONTRACT`),
//! never from the services' code: a bug in a service's routing table or job
//! format cannot move the expectation with it. The operations themselves
//! are in the services' OpenAPI documents (`contract/<service>.json`).
//!
//! ```
//! let contract = tekup_harness::contract::active();
//! assert_eq!(contract.routes_for("LEAD_CREATED"), ["crm-web", "flow-web"]);
//! assert_eq!(contract.queue("email-sync").unwrap().max_retries, 5);
//! let span = contract.queue("lead-processing").unwrap().retry_span;
//! assert_eq!(span, Some(std::time::Duration::from_secs(30)));
//! ```

mod gateway;
mod job;
mod limits;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use gateway::{Gateway, Resume};
pub use job::new_job;
pub use limits::Limits;

/// The reference platform's contract, carried in the binary.
pub const REFERENCE: &str = include_str!("../../../fixtures/platform.yaml");

/// The service name that stands for every service in the matrix.
pub const ANY_SERVICE: &str = "*";

/// Why a contract file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("failed to read the contract {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the contract {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "a contract is already in use ({0}); choose the contract once, before anything reads it"
    )]
    AlreadySet(String),
}

/// The platform's contract (see `fixtures/platform.yaml` for what each part means).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Contract {
    pub version: u32,
    pub services: Vec<String>,
    pub headers: Headers,
    pub apps: Vec<String>,
    pub service_identities: Vec<String>,
    /// app -> service (or `*`) -> permissions.
    pub permissions: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    pub error: ErrorRules,
    pub events: Events,
    pub queues: Queues,
    pub tokens: Tokens,
    #[serde(default)]
    pub webhooks: BTreeMap<String, Webhook>,
    pub audit: Audit,
    pub gateway: Gateway,
    pub stores: Stores,
    /// The bounds of connections, messages and log lines; `None` when the
    /// file states none (the sweep's `limits` class then skips).
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Where it was read from (`built-in` for [`REFERENCE`]).
    #[serde(skip)]
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Headers {
    pub tenant_key: String,
    pub tenant_id: String,
    pub source_app: String,
    pub correlation_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ErrorRules {
    /// A rule's name -> the status (or statuses) it answers.
    pub statuses: BTreeMap<String, Statuses>,
    /// The JSON Schema of every error body.
    pub schema: Value,
}

/// One status, or any of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statuses(pub Vec<u16>);

impl<'de> Deserialize<'de> for Statuses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .map(|n| Statuses(vec![n]))
                .ok_or_else(|| serde::de::Error::custom("a status is a number from 100 to 599")),
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_u64().and_then(|n| u16::try_from(n).ok()))
                .collect::<Option<Vec<u16>>>()
                .map(Statuses)
                .ok_or_else(|| serde::de::Error::custom("a list of statuses holds numbers only")),
            _ => Err(serde::de::Error::custom(
                "expected a status or a list of statuses",
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Events {
    pub stream: String,
    /// The JSON Schema of every event.
    pub envelope: Value,
    pub types: BTreeMap<String, EventType>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EventType {
    /// `platform` (the platform's spec) or `reference` (the reference services' own).
    pub origin: String,
    /// The apps whose rooms receive it.
    pub routes: Vec<String>,
    /// The JSON Schema of its `data`.
    pub data: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Queues {
    pub stream_prefix: String,
    pub dead_suffix: String,
    /// The JSON Schema of a job.
    pub job: Value,
    /// In the contract's order.
    pub list: indexmap_lite::OrderedMap<Queue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Queue {
    pub priority: String,
    /// Retries after the first attempt before the job may be dead-lettered.
    pub max_retries: u32,
    /// The outage a job of the queue rides out: it is dead-lettered only
    /// once it has used its retries and has been failing this long since its
    /// first failure. `None` when the file states none (the chaos suites then
    /// judge no dead letter by it).
    #[serde(default, deserialize_with = "optional_duration")]
    pub retry_span: Option<Duration>,
    /// Job kind -> the JSON Schema of its payload.
    pub jobs: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Tokens {
    pub algorithm: String,
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    pub required_claims: Vec<String>,
    #[serde(deserialize_with = "duration")]
    pub max_lifetime: Duration,
    #[serde(deserialize_with = "duration")]
    pub leeway: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Webhook {
    pub service: String,
    pub path: String,
    pub signature_header: String,
    pub scheme: String,
    #[serde(deserialize_with = "duration")]
    pub tolerance: Duration,
    /// `refused`: the same event delivered twice is handled once.
    pub replay: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Audit {
    pub table: String,
    pub key: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Stores {
    pub tenant_tables: Vec<String>,
    pub identity_tables: Vec<String>,
    pub service_role: String,
    /// SQL (superuser, `$1` the tenant id) that suspends a tenant.
    pub suspend_tenant: Option<String>,
    /// SQL (superuser, `$1` the key id) that revokes an API key.
    pub revoke_key: Option<String>,
}

/// `60s`, `500ms`, `5m`, `1h`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration (write e.g. `60s`, `500ms`, `5m`)"
        ))
    })
}

/// [`duration`], for a key that may be left out.
fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

/// A map that keeps the file's order (the queues are listed in priority
/// order by the platform; reports follow it).
pub mod indexmap_lite {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

    /// Entries in the order the file gives them; keys are unique.
    #[derive(Debug, Clone, PartialEq)]
    pub struct OrderedMap<V>(pub Vec<(String, V)>);

    impl<V> OrderedMap<V> {
        pub fn get(&self, key: &str) -> Option<&V> {
            self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        }
        pub fn keys(&self) -> impl Iterator<Item = &str> {
            self.0.iter().map(|(k, _)| k.as_str())
        }
        pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
            self.0.iter().map(|(k, v)| (k.as_str(), v))
        }
    }

    impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V2<V>(std::marker::PhantomData<V>);
            impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
                type Value = OrderedMap<V>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a map")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut out: Vec<(String, V)> = Vec::new();
                    while let Some((k, v)) = map.next_entry::<String, V>()? {
                        if out.iter().any(|(o, _)| *o == k) {
                            return Err(serde::de::Error::custom(format!("`{k}` is listed twice")));
                        }
                        out.push((k, v));
                    }
                    Ok(OrderedMap(out))
                }
            }
            d.deserialize_map(V2(std::marker::PhantomData))
        }
    }
}

impl Contract {
    /// Parses a contract from YAML; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ContractError> {
        let invalid = |message: String| ContractError::Invalid {
            path: PathBuf::from(source),
            message,
        };
        let mut contract: Contract =
            serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        contract.source = source.to_owned();
        contract.check().map_err(invalid)?;
        Ok(contract)
    }

    /// Reads and checks a contract file.
    pub fn load(path: &Path) -> Result<Self, ContractError> {
        let text = std::fs::read_to_string(path).map_err(|source| ContractError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The reference platform's contract ([`REFERENCE`]).
    pub fn reference() -> &'static Contract {
        static REF: OnceLock<Contract> = OnceLock::new();
        REF.get_or_init(|| {
            Contract::parse(REFERENCE, "built-in fixtures/platform.yaml")
                .expect("the built-in contract parses (tested by contract::tests)")
        })
    }

    /// What a contract must agree with itself on; the message names the part.
    fn check(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!(
                "version {} is not one this harness reads (1)",
                self.version
            ));
        }
        let known_app = |a: &str| self.apps.iter().any(|x| x == a);
        for (name, event) in &self.events.types {
            if let Some(bad) = event.routes.iter().find(|a| !known_app(a)) {
                return Err(format!(
                    "events.types.{name}.routes: `{bad}` is not one of `apps`"
                ));
            }
        }
        for (app, services) in &self.permissions {
            if !known_app(app) && !self.service_identities.contains(app) {
                return Err(format!(
                    "permissions.{app}: not one of `apps` or `service-identities`"
                ));
            }
            for service in services.keys() {
                if service != ANY_SERVICE && !self.services.contains(service) {
                    return Err(format!(
                        "permissions.{app}.{service}: not one of `services` (or `*`)"
                    ));
                }
            }
        }
        for (name, queue) in self.queues.list.iter() {
            if !["high", "medium", "low"].contains(&queue.priority.as_str()) {
                return Err(format!(
                    "queues.list.{name}.priority: `{}` is not high, medium or low",
                    queue.priority
                ));
            }
        }
        for (name, hook) in &self.webhooks {
            if !self.services.contains(&hook.service) {
                return Err(format!(
                    "webhooks.{name}.service: `{}` is not one of `services`",
                    hook.service
                ));
            }
        }
        if let Some(limits) = &self.limits {
            limits.check()?;
        }
        Ok(())
    }

    /// The apps whose rooms receive `event_type`; empty for unknown types.
    pub fn routes_for(&self, event_type: &str) -> &[String] {
        self.events
            .types
            .get(event_type)
            .map_or(&[], |e| e.routes.as_slice())
    }

    /// The event types routed to `app`, in the contract's order.
    pub fn events_for_app(&self, app: &str) -> Vec<&str> {
        self.events
            .types
            .iter()
            .filter(|(_, e)| e.routes.iter().any(|a| a == app))
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The event types.
    pub fn event_types(&self) -> impl Iterator<Item = &str> {
        self.events.types.keys().map(String::as_str)
    }

    /// The queue `name`.
    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.list.get(name)
    }

    /// The queues' names, in the contract's order.
    pub fn queue_names(&self) -> Vec<&str> {
        self.queues.list.keys().collect()
    }

    /// The stream of queue `name` (its dead letters when `dead`).
    pub fn queue_stream(&self, name: &str, dead: bool) -> String {
        let suffix = if dead {
            self.queues.dead_suffix.as_str()
        } else {
            ""
        };
        format!("{}{name}{suffix}", self.queues.stream_prefix)
    }

    /// The permissions `app` holds on `service` (its row, and `*`).
    pub fn permissions_of(&self, app: &str, service: &str) -> BTreeSet<&str> {
        let Some(row) = self.permissions.get(app) else {
            return BTreeSet::new();
        };
        [service, ANY_SERVICE]
            .iter()
            .filter_map(|s| row.get(*s))
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The statuses the rule `name` of `error.statuses` allows.
    pub fn statuses(&self, name: &str) -> &[u16] {
        self.error
            .statuses
            .get(name)
            .map_or(&[], |s| s.0.as_slice())
    }
}

static ACTIVE: OnceLock<Contract> = OnceLock::new();

/// Makes the contract at `path` the one [`active`] returns, for the rest
/// of the process. Call it once, before anything reads the contract.
pub fn use_file(path: &Path) -> Result<&'static Contract, ContractError> {
    let contract = Contract::load(path)?;
    let mut taken = Some(contract);
    let active = ACTIVE.get_or_init(|| taken.take().expect("taken once"));
    if taken.is_some() {
        return Err(ContractError::AlreadySet(active.source.clone()));
    }
    Ok(active)
}

/// The contract in force: the one [`use_file`] chose, else the reference
/// platform's.
pub fn active() -> &'static Contract {
    ACTIVE.get().unwrap_or_else(Contract::reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_contract_parses_and_routes() {
        let c = Contract::reference();
        assert_eq!(c.routes_for("LEAD_CREATED"), ["crm-web", "flow-web"]);
        assert!(c.routes_for("NOPE").is_empty());
        assert_eq!(
            c.queue_names(),
            [
                "lead-processing",
                "email-sync",
                "voice-processing",
                "backup-operations",
                "compliance-checks",
                "analytics-processing"
            ]
        );
        assert_eq!(c.tokens.max_lifetime, Duration::from_secs(60));
        for (name, queue) in c.queues.list.iter() {
            assert_eq!(queue.retry_span, Some(Duration::from_secs(30)), "{name}");
        }
        assert_eq!(
            c.queue_stream("email-sync", true),
            "tekup:queue:email-sync:dead"
        );
        assert!(c
            .permissions_of("secure-platform", "crm-api")
            .contains("read:security"));
        assert!(c.permissions_of("flow-web", "crm-api").is_empty());
        assert_eq!(c.statuses("invalid-input"), [400, 413, 415, 422]);
        for event in c.event_types() {
            assert!(!c.routes_for(event).is_empty(), "{event} has no route");
        }
    }

    #[test]
    fn a_contract_without_retry_spans_still_parses_and_states_none() {
        let without: String = REFERENCE
            .lines()
            .filter(|line| !line.trim_start().starts_with("retry-span:"))
            .map(|line| format!("{line}\n"))
            .collect();
        let c = Contract::parse(&without, "team.yaml").expect("parses");
        assert_eq!(c.queue("email-sync").map(|q| q.retry_span), Some(None));
        let other = REFERENCE.replacen("retry-span: 30s", "retry-span: 2m", 2);
        let c = Contract::parse(&other, "team.yaml").expect("parses");
        let span = |name: &str| c.queue(name).and_then(|q| q.retry_span);
        assert_eq!(span("email-sync"), Some(Duration::from_secs(120)));
        assert_eq!(span("voice-processing"), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_broken_contract_is_refused_naming_the_part() {
        let broken =
            REFERENCE.replace("routes: [crm-web, flow-web]", "routes: [crm-web, flow-wbe]");
        let err = Contract::parse(&broken, "team.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("team.yaml"), "{err}");
        assert!(
            err.contains("events.types.LEAD_CREATED.routes: `flow-wbe`"),
            "{err}"
        );

        let missing = REFERENCE.replace("max-retries: 5", "");
        let err = Contract::parse(&missing, "team.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-retries"), "{err}");

        let bad_span = REFERENCE.replacen("retry-span: 30s", "retry-span: a while", 1);
        let err = Contract::parse(&bad_span, "team.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("queues.list.lead-processing: `a while` is not a duration"),
            "{err}"
        );
        assert!(err.contains("at line "), "{err}");

        let bad_time = REFERENCE.replace("max-lifetime: 60s", "max-lifetime: soon");
        let err = Contract::parse(&bad_time, "team.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`soon` is not a duration"), "{err}");
    }
}
