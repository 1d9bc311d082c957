//! The `sql` step: a query against the platform's database as a tenant
//! (row-level security applies) or as its owner, with the exact rows it
//! must return or the error it must fail with. Values are bound by the
//! column types Postgres infers (`run/sql.rs`).

use std::time::Instant;

use serde_json::{json, Value as Json};

use super::{KindDef, StepCx, StepError};
use crate::report::{Message, MessageKind};
use crate::scenario::model::Need;
use crate::scenario::ops::Place;
use crate::scenario::read::{boolean, keyed, Cx};
use crate::scenario::run::{check, query, SqlError};
use crate::scenario::schema::{self, Key};
use crate::scenario::steps::{action, expected, tenant};
use crate::scenario::vars::Scope;
use crate::scenario::yaml::{Node, Value};

/// Who a query runs as.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlAs {
    /// As the tenant (row-level security applies).
    Tenant(String),
    /// As the database owner.
    Admin,
}

/// A query and, optionally, the exact rows it must return.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlStep {
    pub run_as: SqlAs,
    pub query: String,
    pub args: Vec<serde_json::Value>,
    pub expect: Option<Vec<Vec<serde_json::Value>>>,
    /// The query must fail with this SQLSTATE (`42501`) or message part.
    pub error: Option<String>,
}

/// The keys of a query as a tenant.
const TENANT: [Key; 5] = [
    Key::new("tenant", schema::text)
        .help("One of the scenario's tenants: row-level security applies."),
    Key::new("query", schema::text).required(),
    Key::new("args", args_schema).help("The values of $1, $2, ... (`${...}` expanded)."),
    Key::new("expect", rows_schema).help("The exact rows, in order; cells may hold operators."),
    Key::new("error", schema::text)
        .help("The query must fail with this SQLSTATE (`42501`) or message part."),
];

/// The keys of a query as the database's owner.
const ADMIN: [Key; 5] = [
    Key::new("admin", schema::flag).help("Run as the database owner (no row-level security)."),
    TENANT[1],
    TENANT[2],
    TENANT[3],
    TENANT[4],
];

fn args_schema() -> Json {
    json!({ "type": "array" })
}

fn rows_schema() -> Json {
    json!({ "type": "array", "items": { "type": "array" } })
}

impl KindDef for SqlStep {
    const NAME: &'static str = "sql";
    const ABOUT: &'static str =
        "A query as a tenant (row-level security) or as the database owner, with the rows it must return or the error it must fail with.";
    const RETRIED: bool = true;

    fn decode(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Option<Self> {
        decode(cx, node, "`sql` step", scope)
    }

    fn schema() -> Json {
        schema::actions(&[("tenant", &TENANT), ("admin", &ADMIN)])
    }

    fn label(&self) -> String {
        let who = match &self.run_as {
            SqlAs::Tenant(t) => format!("as {t}"),
            SqlAs::Admin => "as admin".to_owned(),
        };
        let q: String = self.query.chars().take(60).collect();
        format!("sql {who}: {q}")
    }

    fn needs(&self) -> Option<Need> {
        Some(Need::Database)
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        run(cx, self).await
    }
}

fn decode(cx: &mut Cx<'_>, node: &Node, what: &str, scope: &mut Scope) -> Option<SqlStep> {
    let (act, _) = action(cx, node, what, &["tenant", "admin"])?;
    let keys = if act == "tenant" { &TENANT } else { &ADMIN };
    let f = keyed(cx, node, what, keys)?;
    let run_as = if act == "tenant" {
        SqlAs::Tenant(tenant(cx, &f, "tenant", scope)?)
    } else {
        let admin = f.get("admin").and_then(|n| boolean(cx, n, "admin"))?;
        if !admin {
            cx.error(
                f.key_pos("admin").unwrap_or(f.pos),
                "`admin: false` says nothing",
                "run as a tenant with `tenant: acme`, or write `admin: true`",
            );
            return None;
        }
        SqlAs::Admin
    };
    let query = f.req_string(cx, "query", "query: \"select 1\"");
    let args = match f.get("args") {
        None => Vec::new(),
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => items.iter().map(Node::to_json).collect(),
        Some(n) => {
            cx.error(
                n.pos,
                format!("`args` must be a list, found {}", n.describe()),
                "write `args: [\"${lead}\", 1]` for $1, $2",
            );
            return None;
        }
    };
    let expect = match f.get("expect") {
        None => None,
        Some(n) => Some(rows(cx, n)?),
    };
    let error = f.string(cx, "error");
    if error.is_some() && expect.is_some() {
        cx.error(
            f.key_pos("error").unwrap_or(f.pos),
            "a query either returns rows (`expect`) or fails (`error`), not both",
            "keep one of them",
        );
        return None;
    }
    Some(SqlStep {
        run_as,
        query: query?,
        args,
        expect,
        error,
    })
}

fn rows(cx: &mut Cx<'_>, node: &Node) -> Option<Vec<Vec<serde_json::Value>>> {
    let hint = "write the rows as a list of lists: `expect: [[1, \"a\"], [2, \"b\"]]`";
    let Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            format!("`expect` must be a list of rows, found {}", node.describe()),
            hint,
        );
        return None;
    };
    let mut out = Vec::new();
    for row in items {
        match &row.value {
            Value::Seq(cells) => {
                out.push(cells.iter().map(|c| expected(cx, c, Place::Cell)).collect())
            }
            _ => {
                cx.error(
                    row.pos,
                    format!("a row must be a list, found {}", row.describe()),
                    hint,
                );
                return None;
            }
        }
    }
    Some(out)
}

async fn run(cx: &mut StepCx<'_, '_>, step: &SqlStep) -> Result<(), StepError> {
    let pool = cx.pg()?;
    let tenant = match &step.run_as {
        SqlAs::Tenant(name) => Some(
            cx.values
                .tenants
                .get(name)
                .map(|t| t.id.clone())
                .ok_or_else(|| format!("tenant `{name}` was not created for this run"))?,
        ),
        SqlAs::Admin => None,
    };
    let args: Vec<Json> = step
        .args
        .iter()
        .map(|a| cx.values.json(a))
        .collect::<Result<_, _>>()?;
    let shown = format!(
        "{}\nas {}\nargs: {}",
        step.query,
        tenant.as_deref().map_or("admin".to_owned(), |t| format!(
            "tenant {t} (row-level security)"
        )),
        Json::Array(args.clone())
    );
    cx.observe(Message {
        at_ms: cx.clock.now_ms(),
        from: "harness".into(),
        to: "postgres".into(),
        kind: MessageKind::Query,
        label: step
            .query
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" "),
        correlation_id: None,
    });
    let started = Instant::now();
    let result = query(pool, tenant.as_deref(), &step.query, &args).await;
    cx.waited(started.elapsed());
    let failed = |message: String, diff: Option<String>, response: Option<String>| StepError {
        message,
        diff,
        request: Some(shown.clone()),
        response,
    };
    match (result, &step.error) {
        (Err(SqlError::Db { code, message }), Some(want))
            if code == *want || message.contains(want.as_str()) =>
        {
            *cx.note = Some(format!("error {code}"));
            Ok(())
        }
        (Err(e), _) => Err(failed(format!("the query failed: {e}"), None, None)),
        (Ok(rows), Some(want)) => Err(failed(
            format!(
                "expected the query to fail with `{want}`, it returned {} row(s)",
                rows.len()
            ),
            None,
            Some(Json::from(rows.into_iter().map(Json::from).collect::<Vec<_>>()).to_string()),
        )),
        (Ok(rows), None) => {
            *cx.note = Some(format!("{} row(s)", rows.len()));
            let Some(want) = &step.expect else {
                return Ok(());
            };
            let want: Vec<Vec<Json>> = want
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|c| cx.values.json(c))
                        .collect::<Result<_, _>>()
                })
                .collect::<Result<_, _>>()?;
            let first_difference = if want.len() == rows.len() {
                want.iter().zip(&rows).enumerate().find_map(|(i, (w, g))| {
                    if w.len() != g.len() {
                        return Some(format!(
                            "row {}: {} column(s) expected, {} returned",
                            i + 1,
                            w.len(),
                            g.len()
                        ));
                    }
                    w.iter().zip(g).enumerate().find_map(|(j, (a, b))| {
                        check::cell(a, b, &format!("row {} column {}", i + 1, j + 1))
                    })
                })
            } else {
                Some(String::new())
            };
            let Some(why) = first_difference else {
                return Ok(());
            };
            let as_json =
                |r: &[Vec<Json>]| Json::from(r.iter().cloned().map(Json::from).collect::<Vec<_>>());
            let what = if want.len() == rows.len() {
                format!(
                    "the query's {} row(s) differ from the expected ones: {why}",
                    rows.len()
                )
            } else {
                format!(
                    "the query returned {} row(s), {} expected",
                    rows.len(),
                    want.len()
                )
            };
            Err(failed(
                what,
                Some(check::diff(&as_json(&want), &as_json(&rows))),
                None,
            ))
        }
    }
}
