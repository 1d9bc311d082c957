//! The `external` runtime: a deployment that is already running (staging).
//!
//! Nothing is started and nothing is stopped. Each component's URL comes
//! from the environment (`TEKUP_<NAME>_URL`, e.g. `TEKUP_FLOW_API_URL`,
//! `TEKUP_POSTGRES_URL`) or from a TOML file (`--external FILE` or
//! `$TEKUP_EXTERNAL_FILE`):
//!
//! ```toml
//! [vars]
//! admin-token = "the services' ADMIN_TOKEN"
//! [component.flow-api]
//! url = "https://flow.staging.example.com"
//! [component.crm-api]
//! url = "https://crm.staging.example.com"
//! peer-url = "http://crm-api.tekup.svc:8080"   # optional, see below
//! [component.postgres]
//! url = "postgres://tekup:secret@db.staging.example.com:5432/tekup"
//! ```
//!
//! `[vars]` overrides the ecosystem file's vars of the same name (the
//! admin token, webhook secrets), for the deployment's values.
//! Environment variables win over the file. Jobs (migrations) are skipped.
//! A service without a URL is an error naming the variable to set; the
//! database, Redis and the mocks are optional: a deployment rarely exposes
//! them, and what needs one (a scenario's `sql` or `redis` step, a `mock`
//! step, the sweep's `database` class) is skipped with the reason instead.
//! `peer-url` is where the deployment's own components reach one of
//! them, when that differs from `url` (an ingress terminating TLS before a
//! service inside the cluster): a URL the harness hands to a component,
//! like the webhook endpoint a scenario registers with the deployment's
//! Stripe mock (`${crm-api.peer-url}`), is that one.
//! Readiness is still checked (the deployment must answer), and faults
//! (`kill`, `pause`, `restart`) are refused: this is someone's staging.
//! Its OTLP receiver (see [`crate::trace::receiver`]) listens on 127.0.0.1
//! and nothing is pointed at it, since nothing is started: a deployment's
//! spans reach a run only when someone points its exporters there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use serde::Deserialize;

use super::error::EnvError;
use super::model::{Component, Kind};
use super::runtime::{Backend, ExitInfo, Instance, LaunchSpec, Placement};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
struct ExternalFile {
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    component: BTreeMap<String, ExternalComponent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
struct ExternalComponent {
    url: String,
    /// Where the deployment's own components reach it, when that is not
    /// `url` (a webhook the harness registers with a mock of the
    /// deployment points there): e.g. the service's address inside the
    /// cluster, behind the TLS-terminating ingress that `url` names.
    peer_url: Option<String>,
}

/// A running deployment described by URLs.
#[derive(Debug)]
pub(crate) struct ExternalBackend {
    urls: BTreeMap<String, String>,
    peer_urls: BTreeMap<String, String>,
    /// Vars of the deployment, over the ecosystem file's.
    pub(crate) vars: BTreeMap<String, String>,
}

/// The environment variable holding `component`'s URL.
pub fn env_var(component: &str) -> String {
    format!(
        "TEKUP_{}_URL",
        component.to_ascii_uppercase().replace('-', "_")
    )
}

impl ExternalBackend {
    pub(crate) fn load(file: Option<&Path>) -> Result<Self, EnvError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("TEKUP_EXTERNAL_FILE").map(PathBuf::from));
        let parsed = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(EnvError::io(format!("read {}", path.display())))?;
                toml::from_str::<ExternalFile>(&text).map_err(|e| {
                    EnvError::other(format!("read the deployment file {}", path.display()), e)
                })?
            }
            None => ExternalFile::default(),
        };
        let peer_urls = parsed
            .component
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.peer_url.clone()?)))
            .collect();
        Ok(Self {
            vars: parsed.vars,
            urls: parsed
                .component
                .into_iter()
                .map(|(k, v)| (k, v.url))
                .collect(),
            peer_urls,
        })
    }

    fn url_of(&self, component: &str) -> Option<String> {
        std::env::var(env_var(component))
            .ok()
            .or_else(|| self.urls.get(component).cloned())
    }
}

#[derive(Debug)]
struct ExternalInstance {
    url: Option<String>,
    peer_url: Option<String>,
    job: bool,
    host: String,
    port: Option<u16>,
}

fn refused(action: &str) -> EnvError {
    EnvError::Unsupported {
        runtime: "external",
        action: format!("{action} a component of a deployment it did not start"),
    }
}

impl Instance for ExternalInstance {
    fn host(&self) -> String {
        self.host.clone()
    }
    fn host_port(&self) -> Option<u16> {
        self.port
    }
    fn url_override(&self) -> Option<String> {
        self.url.clone()
    }
    fn peer_url_override(&self) -> Option<String> {
        self.peer_url.clone()
    }
    fn exit_status(&self) -> BoxFuture<'_, Result<Option<ExitInfo>, EnvError>> {
        let status = self.job.then(|| ExitInfo {
            success: true,
            text: "skipped: jobs do not run against an external deployment".into(),
        });
        async move { Ok(status) }.boxed()
    }
    fn log_tail(&self, _lines: usize) -> BoxFuture<'_, String> {
        async { "(no logs: the component runs in an external deployment)".to_owned() }.boxed()
    }
    fn log_contains<'a>(&'a self, _text: &'a str) -> BoxFuture<'a, bool> {
        async { false }.boxed()
    }
    fn kill(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async { Err(refused("kill")) }.boxed()
    }
    fn pause(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async { Err(refused("pause")) }.boxed()
    }
    fn resume(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async { Err(refused("resume")) }.boxed()
    }
    fn restart(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async { Err(refused("restart")) }.boxed()
    }
}

impl Backend for ExternalBackend {
    fn name(&self) -> &'static str {
        "external"
    }

    fn place(&self, component: &Component) -> Result<Placement, EnvError> {
        let url = self.url_of(&component.name);
        let parsed = url.as_deref().and_then(|u| reqwest::Url::parse(u).ok());
        Ok(Placement {
            inner_host: parsed
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default(),
            inner_port: parsed
                .as_ref()
                .and_then(reqwest::Url::port_or_known_default),
            bind_host: String::new(),
        })
    }

    fn file_path(&self, host_path: &Path, _relative: &str) -> String {
        host_path.display().to_string()
    }

    fn start(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Arc<dyn Instance>, EnvError>> {
        async move {
            let name = &spec.component.name;
            let url = self.url_of(name);
            if url.is_none() && spec.component.kind == Kind::Service && spec.component.admin_path.is_none() {
                return Err(EnvError::Start {
                    component: name.clone(),
                    message: format!(
                        "no URL for it: set {} or add `[component.{name}] url = \"...\"` to the deployment file",
                        env_var(name)
                    ),
                });
            }
            Ok(Arc::new(ExternalInstance {
                url,
                peer_url: self.peer_urls.get(name).cloned(),
                job: spec.component.kind == Kind::Job,
                host: spec.placement.inner_host,
                port: spec.placement.inner_port,
            }) as Arc<dyn Instance>)
        }
        .boxed()
    }

    fn teardown(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }

    fn keep_state(&self) -> serde_json::Value {
        serde_json::json!({})
    }
}
