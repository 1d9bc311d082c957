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
            Kind::Postgres => postgres_url(&c.user, &password()?, host, &port, &c.database),
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

/// A Postgres connection URL; the user, password and database are
/// percent-encoded, so a password with `@`, `/`, quotes or spaces stays
/// one password.
pub(crate) fn postgres_url(user: &str, password: &str, host: &str, port: &str, db: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "postgres://{}:{}@{host}:{port}/{}",
        enc(user),
        enc(password),
        enc(db)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_keeps_odd_credentials_whole() {
        let url = postgres_url(
            "ledger owner",
            "it's a p@ss/word",
            "h",
            "5432",
            "ledger-books",
        );
        assert_eq!(
            url,
            "postgres://ledger%20owner:it%27s%20a%20p%40ss%2Fword@h:5432/ledger-books"
        );
        let parsed: sqlx::postgres::PgConnectOptions = url.parse().expect("sqlx reads it");
        assert_eq!(parsed.get_username(), "ledger owner");
        assert_eq!(parsed.get_database(), Some("ledger-books"));
        assert_eq!(parsed.get_host(), "h");
    }
}
