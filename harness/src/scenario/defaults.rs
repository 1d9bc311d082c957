//! `defaults:`: what the `http` steps of a file (or of one of its blocks)
//! have in common, so each step states only what differs.
//!
//! Defaults are put into the steps' YAML before they are decoded, as if
//! written in each step, with the position of the default: a default that
//! is wrong (a tenant the scenario does not declare) is reported once per
//! step that takes it, at the line of the default. A step's own value wins;
//! `tenant: null` or `app: null` in a step takes none (a request without
//! the tenant's headers), whatever the defaults say.

use std::collections::BTreeMap;

use super::read::{fields, Cx};
use super::yaml::{Node, Value};

/// The keys an `http` default may give.
pub(crate) const HTTP_KEYS: [&str; 3] = ["service", "tenant", "app"];

/// The blocks of a scenario that may have defaults of their own.
pub(crate) const BLOCKS: [&str; 3] = ["setup", "steps", "teardown"];

/// Defaults for the steps of one list: the `http` keys and their values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Defaults {
    http: Vec<(Node, Node)>,
}

/// A scenario's `defaults:`: for the whole file, and over them per block.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileDefaults {
    pub(crate) file: Defaults,
    blocks: BTreeMap<String, Defaults>,
}

impl FileDefaults {
    /// The defaults of a block: the file's, with the block's own over them.
    pub(crate) fn block(&self, block: &str) -> Defaults {
        let mut out = self.file.clone();
        if let Some(own) = self.blocks.get(block) {
            for (k, v) in &own.http {
                out.http.retain(|(o, _)| o.key_text() != k.key_text());
                out.http.push((k.clone(), v.clone()));
            }
        }
        out
    }
}

/// A scenario's `defaults: { http: {...}, setup: { http: {...} }, ... }`.
pub(crate) fn file_defaults(cx: &mut Cx<'_>, node: &Node) -> FileDefaults {
    let mut allowed = vec!["http"];
    allowed.extend(BLOCKS);
    let Some(f) = fields(cx, node, "`defaults`", &allowed) else {
        return FileDefaults::default();
    };
    let mut out = FileDefaults::default();
    if let Some(n) = f.get("http") {
        out.file.http = http(cx, n, "`defaults.http`");
    }
    for block in BLOCKS {
        if let Some(n) = f.get(block) {
            let what = format!("`defaults.{block}`");
            if let Some(b) = fields(cx, n, &what, &["http"]) {
                let http = b
                    .get("http")
                    .map(|n| http(cx, n, &format!("`defaults.{block}.http`")))
                    .unwrap_or_default();
                out.blocks.insert(block.to_owned(), Defaults { http });
            }
        }
    }
    out
}

/// A step file's `defaults: { http: {...} }` (it has one block).
pub(crate) fn step_file_defaults(cx: &mut Cx<'_>, node: &Node) -> Defaults {
    let Some(f) = fields(cx, node, "`defaults` of a step file", &["http"]) else {
        return Defaults::default();
    };
    Defaults {
        http: f
            .get("http")
            .map(|n| http(cx, n, "`defaults.http`"))
            .unwrap_or_default(),
    }
}

fn http(cx: &mut Cx<'_>, node: &Node, what: &str) -> Vec<(Node, Node)> {
    if fields(cx, node, what, &HTTP_KEYS).is_none() {
        return Vec::new();
    }
    let Value::Map(entries) = &node.value else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|(k, _)| HTTP_KEYS.contains(&k.key_text().as_str()))
        .cloned()
        .collect()
}

impl Defaults {
    /// The step with the defaults put in: into an `http` step, and into
    /// the `http` step an `eventually` retries or fails fast on.
    pub(crate) fn apply(&self, step: &Node) -> Node {
        let Value::Map(entries) = &step.value else {
            return step.clone();
        };
        let entries = entries
            .iter()
            .map(|(k, v)| {
                let v = match k.key_text().as_str() {
                    "http" => self.fill(v),
                    "eventually" => match &v.value {
                        Value::Map(inner) => Node {
                            pos: v.pos,
                            value: Value::Map(
                                inner
                                    .iter()
                                    .map(|(ik, iv)| {
                                        match ik.key_text().as_str() {
                                            "http" => (ik.clone(), self.fill(iv)),
                                            // One step, of the kinds `eventually` retries.
                                            "fail-fast-on" => (ik.clone(), self.apply(iv)),
                                            _ => (ik.clone(), iv.clone()),
                                        }
                                    })
                                    .collect(),
                            ),
                        },
                        _ => v.clone(),
                    },
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect();
        Node {
            pos: step.pos,
            value: Value::Map(entries),
        }
    }

    /// An `http` map with the missing keys filled in and `tenant: null` /
    /// `app: null` taken out.
    fn fill(&self, http: &Node) -> Node {
        let Value::Map(entries) = &http.value else {
            return http.clone();
        };
        let is_null = |n: &Node| {
            matches!(n.value, Value::Scalar { plain: true, .. }) && n.to_json().is_null()
        };
        let written: Vec<String> = entries.iter().map(|(k, _)| k.key_text()).collect();
        let mut out: Vec<(Node, Node)> = entries
            .iter()
            .filter(|(k, v)| !(matches!(k.key_text().as_str(), "tenant" | "app") && is_null(v)))
            .cloned()
            .collect();
        for (k, v) in &self.http {
            if !written.contains(&k.key_text()) {
                out.push((k.clone(), v.clone()));
            }
        }
        Node {
            pos: http.pos,
            value: Value::Map(out),
        }
    }

    /// The default values (their references are checked where written).
    pub(crate) fn values(&self) -> impl Iterator<Item = &Node> {
        self.http.iter().map(|(_, v)| v)
    }

    /// The `defaults` node with `f` applied to its values (a step file's
    /// defaults take its parameters).
    pub(crate) fn map_values(&self, f: impl Fn(&Node) -> Node) -> Defaults {
        Defaults {
            http: self.http.iter().map(|(k, v)| (k.clone(), f(v))).collect(),
        }
    }
}
