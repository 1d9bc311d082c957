//! [`Links`]: one [`Proxy`] per link `from->to` between two components.
//!
//! A link exists where component `from` references component `to`'s
//! `host`, `port`, `url` or `admin-url` in its args or env. Under the
//! process runtime the ecosystem starts a proxy per link and renders those
//! references to the proxy's address, so a toxic on `flow-api->redis`
//! touches flow-api's traffic to Redis and nothing else (the worker's
//! traffic to Redis goes through `worker->redis`). The harness itself (its
//! readiness probes, `Ecosystem::url`, `Ecosystem::redis`) reaches the
//! components directly.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use super::error::{list, ChaosError};
use super::proxy::Proxy;

/// One link and its proxy.
#[derive(Debug)]
pub struct Link {
    from: String,
    to: String,
    proxy: Proxy,
}

impl Link {
    /// The component that connects.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// The component it connects to.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// `from->to`.
    pub fn name(&self) -> &str {
        self.proxy.name()
    }

    /// The proxy carrying it.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} -> {})",
            self.name(),
            self.proxy.addr(),
            self.proxy.upstream()
        )
    }
}

/// Splits `from->to`.
pub fn parse_link(name: &str) -> Result<(&str, &str), ChaosError> {
    match name.split_once("->") {
        Some((from, to))
            if !from.trim().is_empty() && !to.trim().is_empty() && !to.contains("->") =>
        {
            Ok((from.trim(), to.trim()))
        }
        _ => Err(ChaosError::BadLinkName(name.to_owned())),
    }
}

/// The proxies of an ecosystem's links, by `from->to`. Dropping it stops
/// them all.
#[derive(Debug, Default)]
pub struct Links {
    links: BTreeMap<(String, String), Link>,
}

impl Links {
    /// Starts a proxy for each `(from, to, address of to)`.
    pub async fn start(
        links: impl IntoIterator<Item = (String, String, SocketAddr)>,
    ) -> Result<Self, ChaosError> {
        let mut started = BTreeMap::new();
        for (from, to, upstream) in links {
            let proxy = Proxy::start(format!("{from}->{to}"), upstream).await?;
            started.insert((from.clone(), to.clone()), Link { from, to, proxy });
        }
        Ok(Self { links: started })
    }

    /// The link from `from` to `to`.
    pub fn link(&self, from: &str, to: &str) -> Result<&Link, ChaosError> {
        self.links
            .get(&(from.to_owned(), to.to_owned()))
            .ok_or_else(|| self.missing(&format!("{from}->{to}"), String::new()))
    }

    /// The proxy of the link from `from` to `to`.
    pub fn get(&self, from: &str, to: &str) -> Result<&Proxy, ChaosError> {
        self.link(from, to).map(Link::proxy)
    }

    /// The proxy of the link called `from->to`.
    pub fn named(&self, name: &str) -> Result<&Proxy, ChaosError> {
        let (from, to) = parse_link(name)?;
        self.get(from, to)
    }

    /// Every link, ordered by `from`, then `to`.
    pub fn iter(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
    }

    /// The names (`from->to`) of every link.
    pub fn names(&self) -> Vec<String> {
        self.iter().map(|l| l.name().to_owned()).collect()
    }

    /// How many links there are.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Removes every toxic and enables every link (between scenarios).
    pub fn reset(&self) -> Result<(), ChaosError> {
        self.iter().try_for_each(|l| l.proxy.reset())
    }

    /// The error for an unknown link, with `hint` (may be empty) saying why.
    pub(crate) fn missing(&self, link: &str, hint: String) -> ChaosError {
        ChaosError::NoSuchLink {
            link: link.to_owned(),
            why: if hint.is_empty() {
                hint
            } else {
                format!(" ({hint})")
            },
            known: list(self.names()),
        }
    }

    /// Stops every proxy and waits for their tasks.
    pub async fn shutdown(self) {
        for (_, link) in self.links {
            link.proxy.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_are_from_arrow_to() {
        assert_eq!(
            parse_link("flow-api->redis").expect("parses"),
            ("flow-api", "redis")
        );
        assert_eq!(parse_link(" a -> b ").expect("parses"), ("a", "b"));
        for bad in ["flow-api", "->redis", "a->", "a->b->c", "a-b"] {
            let err = parse_link(bad).expect_err(bad).to_string();
            assert!(err.contains("write it `from->to`"), "{err}");
        }
    }

    #[tokio::test]
    async fn an_unknown_link_lists_the_known_ones() {
        let upstream: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let links = Links::start([
            ("flow-api".to_owned(), "redis".to_owned(), upstream),
            ("worker".to_owned(), "redis".to_owned(), upstream),
        ])
        .await
        .expect("links start");
        assert_eq!(links.names(), ["flow-api->redis", "worker->redis"]);
        assert_eq!(
            links.named("flow-api->redis").expect("known").name(),
            "flow-api->redis"
        );
        let err = links.get("crm-api", "redis").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "no link `crm-api->redis`; the links are: flow-api->redis, worker->redis"
        );
    }
}
