//! What `${...}` references resolve to, from a component's placement.

use super::model::{Component, EcosystemFile, Kind};
use super::refs::{self, Ref};
use super::runtime::Placement;

/// `${self.<attr>}`: where this component listens.
pub(crate) fn own_attr(attr: &str, me: &Placement) -> String {
    let port = me.inner_port.map(|p| p.to_string()).unwrap_or_default();
    match attr {
        "port" => port,
        "host" => me.inner_host.clone(),
        "bind-host" => me.bind_host.clone(),
        _ => format!("{}:{port}", me.bind_host),
    }
}

pub(crate) fn other_attr(
    file: &EcosystemFile,
    c: &Component,
    at: &Placement,
    attr: &str,
) -> Result<String, String> {
    let host = &at.inner_host;
    let port = at.inner_port.map(|p| p.to_string()).unwrap_or_default();
    let password = || -> Result<String, String> {
        match &c.password {
            Some(t) => refs::render(&t.text, &mut |r| match r {
                Ref::Var(v) => Ok(file.vars.get(v).cloned().unwrap_or_default()),
                _ => Err("a password may only reference ${vars...}".into()),
            }),
            None => Ok(String::new()),
        }
    };
    let url = || -> Result<String, String> {
        Ok(match c.kind {
            Kind::Postgres => format!(
                "postgres://{}:{}@{host}:{port}/{}",
                c.user,
                password()?,
                c.database
            ),
            Kind::Redis => format!("redis://{host}:{port}"),
            _ => format!("http://{host}:{port}"),
        })
    };
    Ok(match attr {
        "host" => host.clone(),
        "port" => port,
        "url" => url()?,
        "admin-url" => format!("{}{}", url()?, c.admin_path.as_deref().unwrap_or("")),
        "user" => c.user.clone(),
        "password" => password()?,
        "database" => c.database.clone(),
        other => return Err(format!("unknown attribute `{other}`")),
    })
}
