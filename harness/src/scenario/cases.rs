//! Data-driven scenarios: `examples:` (a table of rows) or `matrix:` (the
//! product of lists) make one file into one test case per row, named
//! `name[row]`.
//!
//! A row's values are put into the file's text before its steps are
//! decoded: every `${key}` of a row key becomes the row's value, also
//! inside another reference (`${cross-app-token:iss=${app},...}`, whose
//! claims then differ per row), and a string that is exactly `${key}`
//! takes the value with its type. Each case is then decoded and checked as
//! a scenario of its own, so every check of the format (and every
//! `file:line:col`) holds for every row, and the runner needs to know
//! nothing of rows: a case is a scenario. Textual substitution rather than
//! run-time variables because a row's value decides what the checker can
//! see (a token's claims, a tenant name, a duration) and must be checked
//! like a value written in the file.

use std::collections::BTreeSet;

use super::read::{Cx, Fields};
use super::yaml::{Node, Pos, Value};

/// The most cases one file may expand to (a typo in a matrix should not
/// make a million test cases).
pub(crate) const MAX_CASES: usize = 1000;

/// One row: its label and its values, in the order the file gives them.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) label: String,
    pub(crate) values: Vec<(String, Node)>,
}

/// The rows of a table and its keys, each where it is written.
pub(crate) type Table = (Vec<Row>, Vec<(String, Pos)>);

/// The rows of `examples:` or `matrix:`; `None` for a plain scenario, an
/// empty list when the table is wrong (the errors are recorded).
pub(crate) fn rows(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<Table> {
    let examples = f.get("examples");
    let matrix = f.get("matrix");
    match (examples, matrix) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            let pos = f.key_pos("matrix").unwrap_or(f.pos);
            cx.error(
                pos,
                "a scenario has `examples` or `matrix`, not both",
                "write every combination as a row of `examples`, or the lists as `matrix`",
            );
            Some((Vec::new(), Vec::new()))
        }
        (Some(n), None) => Some(examples_rows(cx, n)),
        (None, Some(n)) => Some(matrix_rows(cx, n)),
    }
}

/// A row key is a name `${...}` can use: letters, digits, `_` and `-`,
/// not one of the generated values.
fn check_key(cx: &mut Cx<'_>, name: &str, pos: Pos) -> bool {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        cx.error(
            pos,
            format!("`{name}` cannot name a row value"),
            "use letters, digits, `_` and `-`, starting with a letter (it is used as `${name}`)",
        );
        return false;
    }
    if super::vars::GENERATED.contains(&name) {
        cx.error(
            pos,
            format!("row value `{name}` hides the generated `${{{name}}}`"),
            "give it another name",
        );
        return false;
    }
    true
}

fn examples_rows(cx: &mut Cx<'_>, node: &Node) -> Table {
    let Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            format!(
                "`examples` must be a list of rows, found {}",
                node.describe()
            ),
            "write `examples: [ { app: crm-web, status: 200 }, { app: flow-web, status: 403 } ]`",
        );
        return (Vec::new(), Vec::new());
    };
    if items.is_empty() {
        cx.error(
            node.pos,
            "`examples` is empty",
            "give at least one row, or remove `examples`",
        );
        return (Vec::new(), Vec::new());
    }
    let mut rows = Vec::new();
    let mut keys: Option<Vec<(String, Pos)>> = None;
    let mut labels: Vec<(String, Pos)> = Vec::new();
    for item in items {
        let Value::Map(entries) = &item.value else {
            cx.error(
                item.pos,
                format!(
                    "a row of `examples` must be a map, found {}",
                    item.describe()
                ),
                "write a row as `{ app: crm-web, status: 200 }`",
            );
            continue;
        };
        let mut label = None;
        let mut values = Vec::new();
        for (k, v) in entries {
            let name = k.key_text();
            if name == "label" {
                label = super::read::string(cx, v, "label").map(|l| (l, v.pos));
            } else if check_key(cx, &name, k.pos) {
                values.push((name, v.clone()));
            }
        }
        let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
        match &keys {
            None => {
                keys = Some(
                    values
                        .iter()
                        .zip(entries.iter().filter(|(k, _)| k.key_text() != "label"))
                        .map(|((n, _), (k, _))| (n.clone(), k.pos))
                        .collect(),
                );
            }
            Some(first) => {
                let missing: Vec<&str> = first
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| !names.contains(n))
                    .collect();
                let extra: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|n| !first.iter().any(|(f, _)| f == n))
                    .collect();
                if !missing.is_empty() || !extra.is_empty() {
                    let mut what = Vec::new();
                    if !missing.is_empty() {
                        what.push(format!("lacks `{}`", missing.join("`, `")));
                    }
                    if !extra.is_empty() {
                        what.push(format!(
                            "has `{}` the first row has not",
                            extra.join("`, `")
                        ));
                    }
                    cx.error(
                        item.pos,
                        format!("this row of `examples` {}", what.join(" and ")),
                        format!(
                            "every row has the same keys (`label` aside): {}",
                            first
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    continue;
                }
            }
        }
        let (label, label_pos) = label.unwrap_or_else(|| (default_label(&values), item.pos));
        if let Some((_, first)) = labels.iter().find(|(l, _)| *l == label) {
            cx.error(
                label_pos,
                format!("two rows of `examples` are both labelled `{label}`"),
                format!(
                    "line {} has it too; the label names the test case `name[{label}]`: make it unique (an explicit `label:`)",
                    first.line
                ),
            );
            continue;
        }
        labels.push((label.clone(), label_pos));
        rows.push(Row { label, values });
    }
    (rows, keys.unwrap_or_default())
}

fn matrix_rows(cx: &mut Cx<'_>, node: &Node) -> Table {
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!(
                "`matrix` must be a map of names to lists, found {}",
                node.describe()
            ),
            "write `matrix: { app: [crm-web, flow-web], verb: [GET, POST] }`",
        );
        return (Vec::new(), Vec::new());
    };
    if entries.is_empty() {
        cx.error(
            node.pos,
            "`matrix` is empty",
            "give at least one name with a list of values, or remove `matrix`",
        );
        return (Vec::new(), Vec::new());
    }
    let mut lists: Vec<(String, &[Node])> = Vec::new();
    let mut keys = Vec::new();
    for (k, v) in entries {
        let name = k.key_text();
        if !check_key(cx, &name, k.pos) {
            continue;
        }
        match &v.value {
            Value::Seq(items) if !items.is_empty() => {
                lists.push((name.clone(), items));
                keys.push((name, k.pos));
            }
            Value::Seq(_) => cx.error(
                v.pos,
                format!("`matrix.{name}` is empty: the matrix would have no case"),
                "give it at least one value",
            ),
            _ => cx.error(
                v.pos,
                format!("`matrix.{name}` must be a list, found {}", v.describe()),
                format!("write `{name}: [a, b]`"),
            ),
        }
    }
    if lists.len() != entries.len() {
        return (Vec::new(), keys);
    }
    let total = lists
        .iter()
        .try_fold(1usize, |n, (_, l)| n.checked_mul(l.len()))
        .unwrap_or(usize::MAX);
    if total > MAX_CASES {
        cx.error(
            node.pos,
            format!("`matrix` makes {total} cases, more than {MAX_CASES}"),
            "split the file, or list the combinations that matter as `examples`",
        );
        return (Vec::new(), keys);
    }
    let mut rows: Vec<Vec<(String, Node)>> = vec![Vec::new()];
    for (name, items) in &lists {
        rows = rows
            .into_iter()
            .flat_map(|row| {
                items.iter().map(move |item| {
                    let mut row = row.clone();
                    row.push((name.clone(), item.clone()));
                    row
                })
            })
            .collect();
    }
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for values in rows {
        let label = default_label(&values);
        if seen.contains(&label) {
            let pos = values.last().map_or(node.pos, |(_, v)| v.pos);
            cx.error(
                pos,
                format!("`matrix` makes the case `[{label}]` twice"),
                "a list of the matrix repeats a value: list each value once",
            );
            continue;
        }
        seen.push(label.clone());
        out.push(Row { label, values });
    }
    (out, keys)
}

/// `app=crm-web,verb=GET`: each value as written (lists and maps as JSON).
fn default_label(values: &[(String, Node)]) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={}", text_of(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A value as it goes into a text.
fn text_of(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, .. } => text.clone(),
        _ => node.to_json().to_string(),
    }
}

/// A copy of `node` with the row's values put in for `${key}`; the keys
/// used are added to `used`.
pub(crate) fn substitute(node: &Node, row: &Row, used: &mut BTreeSet<String>) -> Node {
    match &node.value {
        Value::Scalar { text, plain } => {
            if let Some((name, value)) = whole(text, row) {
                used.insert(name.to_owned());
                // Keep the position of the use, so errors point at it.
                return Node {
                    pos: node.pos,
                    value: value.value.clone(),
                };
            }
            Node {
                pos: node.pos,
                value: Value::Scalar {
                    text: replace(text, row, used),
                    plain: *plain,
                },
            }
        }
        Value::Seq(items) => Node {
            pos: node.pos,
            value: Value::Seq(items.iter().map(|n| substitute(n, row, used)).collect()),
        },
        Value::Map(entries) => Node {
            pos: node.pos,
            value: Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let keep = matches!(k.key_text().as_str(), "examples" | "matrix" | "name");
                        let v = if keep {
                            v.clone()
                        } else {
                            substitute(v, row, used)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
        },
    }
}

/// The row value a text is exactly a reference to.
fn whole<'r>(text: &str, row: &'r Row) -> Option<(&'r str, &'r Node)> {
    let name = text.strip_prefix("${")?.strip_suffix('}')?.trim();
    row.values
        .iter()
        .find(|(k, _)| k == name)
        .map(|(k, v)| (k.as_str(), v))
}

/// Puts the row's values in for every `${key}` of the text (also inside
/// another reference); `$${` stays as written.
fn replace(text: &str, row: &Row, used: &mut BTreeSet<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at + 2]);
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let found = after.find('}').and_then(|end| {
            let name = after[..end].trim();
            row.values
                .iter()
                .find(|(k, _)| k == name)
                .map(|(k, v)| (end, k, v))
        });
        match found {
            Some((end, name, value)) => {
                used.insert(name.clone());
                out.push_str(&text_of(value));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
