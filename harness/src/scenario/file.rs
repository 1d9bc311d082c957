//! A scenario file as a whole: its top-level keys, its included step files,
//! and the checks across files (scenario names are unique).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use super::cases::{self, Row};
use super::defaults::{self, Defaults};
use super::model::{Include, Need, OwnSettings, Scenario, Secret, SkipIf};
use super::read::{boolean, duration, fields, string_list, Cx, Fields};
use super::uses::{self, Env};
use super::vars::Scope;
use super::yaml::{self, Node, Pos};
use super::{Diagnostic, ScenarioError};

/// Shared step files end with this; a directory walk does not take them for scenarios.
pub const INCLUDE_SUFFIX: &str = ".steps.yaml";

const TOP_KEYS: [&str; 16] = [
    "name",
    "defaults",
    "tags",
    "skip-if",
    "examples",
    "matrix",
    "tenants",
    "vars",
    "secrets",
    "include",
    "exclusive",
    "own-ecosystem",
    "timeout",
    "setup",
    "steps",
    "teardown",
];

/// Parses a scenario from text; `path` names it in errors and anchors `include`.
pub fn parse_str(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let mut errors = Vec::new();
    let scenario = {
        let mut cx = Cx {
            file: path.to_path_buf(),
            errors: &mut errors,
        };
        document(&mut cx, text).and_then(|root| scenario(&mut cx, &root))
    };
    match scenario {
        Some(s) if errors.is_empty() => Ok(s),
        _ => {
            if errors.is_empty() {
                errors.push(Diagnostic {
                    file: path.to_path_buf(),
                    pos: Pos { line: 1, col: 1 },
                    message: "not a valid scenario".to_owned(),
                    hint: "see `tekup-harness schema`".to_owned(),
                });
            }
            errors.sort_by_key(|d| (d.file.clone(), d.pos));
            errors.dedup();
            Err(ScenarioError(errors))
        }
    }
}

/// Reads and parses a scenario file.
pub fn parse_file(path: &Path) -> Result<Scenario, ScenarioError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(path, &text),
        Err(e) => Err(ScenarioError(vec![Diagnostic {
            file: path.to_path_buf(),
            pos: Pos { line: 1, col: 1 },
            message: format!("failed to read the file: {e}"),
            hint: "give a readable `.yaml` file or a directory of them".to_owned(),
        }])),
    }
}

fn document(cx: &mut Cx<'_>, text: &str) -> Option<Node> {
    match yaml::load(text) {
        Ok(Some(root)) => Some(root),
        Ok(None) => {
            cx.error(
                Pos { line: 1, col: 1 },
                "the file is empty",
                "start from `tekup-harness new scenario NAME`",
            );
            None
        }
        Err(e) => {
            cx.error(e.pos, e.message, e.hint);
            None
        }
    }
}

fn scenario(cx: &mut Cx<'_>, root: &Node) -> Option<Scenario> {
    let f = fields(cx, root, "a scenario", &TOP_KEYS)?;
    let Some((rows, keys)) = cases::rows(cx, &f) else {
        return decode(cx, &f, None, &mut BTreeSet::new());
    };
    reserved(cx, &f, &keys);
    // Each case is decoded on its own copy of the file. A problem every
    // case has is reported once, as written; one only some rows have names
    // the case.
    let mut per_case: Vec<(Option<Scenario>, Vec<Diagnostic>, &Row)> = Vec::new();
    let mut used = BTreeSet::new();
    for row in &rows {
        let tree = cases::substitute(root, row, &mut used);
        let mut errors = Vec::new();
        let mut sub = Cx {
            file: cx.file.clone(),
            errors: &mut errors,
        };
        let case = fields(&mut sub, &tree, "a scenario", &TOP_KEYS)
            .and_then(|f| decode(&mut sub, &f, Some(row), &mut used));
        per_case.push((case, errors, row));
    }
    for (_, errors, row) in &per_case {
        for d in errors {
            let everywhere = per_case
                .iter()
                .all(|(_, e, _)| e.iter().any(|o| o.pos == d.pos && o.message == d.message));
            let mut d = d.clone();
            if !everywhere {
                d.message = format!("{} (in case `[{}]`)", d.message, row.label);
            }
            cx.errors.push(d);
        }
    }
    for (key, pos) in &keys {
        if !used.contains(key) {
            cx.error(
                *pos,
                format!("row value `{key}` is used by no step"),
                format!("use it as `${{{key}}}`, or remove it (its cases would repeat each other)"),
            );
        }
    }
    let name = f.string(cx, "name")?;
    let mut cases = Vec::new();
    for (case, _, row) in per_case {
        let mut case = case?;
        case.name = format!("{name}[{}]", row.label);
        cases.push(case);
    }
    let mut file = cases.first()?.clone();
    file.name = name;
    file.cases = cases;
    Some(file)
}

/// Row keys may not hide a tenant or a var (which one a `${x}` meant would
/// depend on the order of substitution).
fn reserved(cx: &mut Cx<'_>, f: &Fields<'_>, keys: &[(String, Pos)]) {
    let mut taken: Vec<String> = Vec::new();
    if let Some(yaml::Value::Seq(items)) = f.get("tenants").map(|n| &n.value) {
        taken.extend(items.iter().map(Node::key_text));
    }
    if let Some(yaml::Value::Map(entries)) = f.get("vars").map(|n| &n.value) {
        taken.extend(entries.iter().map(|(k, _)| k.key_text()));
    }
    for (key, pos) in keys {
        if taken.contains(key) {
            cx.error(
                *pos,
                format!("row value `{key}` hides a tenant or a var of the same name"),
                "give it another name",
            );
        }
    }
}

/// The scenario of a (substituted) file.
fn decode(
    cx: &mut Cx<'_>,
    f: &Fields<'_>,
    row: Option<&Row>,
    used: &mut BTreeSet<String>,
) -> Option<Scenario> {
    let name = f.req_string(cx, "name", "name: lead-to-contact");
    let name_pos = f.get("name").map_or(f.pos, |n| n.pos);
    let tags = f
        .get("tags")
        .map(|n| string_list(cx, n, "tags"))
        .unwrap_or_default();
    let skip_if = f.get("skip-if").and_then(|n| skip_if(cx, n));
    let tenants = f
        .get("tenants")
        .map(|n| string_list(cx, n, "tenants"))
        .unwrap_or_default();
    let mut scope = Scope::default();
    for (t, pos) in &tenants {
        if !scope.tenants.insert(t.clone()) {
            cx.error(
                *pos,
                format!("tenant `{t}` is listed twice"),
                "list each tenant once",
            );
        }
    }
    let vars = f
        .get("vars")
        .map(|n| vars(cx, n, &mut scope))
        .unwrap_or_default();
    let exclusive = f
        .get("exclusive")
        .and_then(|n| boolean(cx, n, "exclusive"))
        .unwrap_or(false);
    let own_ecosystem = f.get("own-ecosystem").and_then(|n| own_settings(cx, n));
    let timeout = f.get("timeout").and_then(|n| duration(cx, n, "timeout"));
    let defaults = f
        .get("defaults")
        .map(|n| defaults::file_defaults(cx, n))
        .unwrap_or_default();
    let mut env = Env::default();
    let setup = f
        .get("setup")
        .map(|n| {
            uses::block(
                cx,
                n,
                "setup",
                &mut scope,
                &mut env,
                &defaults.block("setup"),
            )
        })
        .unwrap_or_default();
    let include = f
        .get("include")
        .map(|n| includes(cx, n, &mut scope, row, used, &mut env, &defaults.file))
        .unwrap_or_default();
    let main = f.require(cx, "steps", "steps: [ - sleep: 1s ]").map(|n| {
        uses::block(
            cx,
            n,
            "steps",
            &mut scope,
            &mut env,
            &defaults.block("steps"),
        )
    });
    if let (Some(n), Some(main)) = (f.get("steps"), &main) {
        if main.is_empty() && matches!(&n.value, yaml::Value::Seq(items) if items.is_empty()) {
            cx.error(
                n.pos,
                "`steps` is empty",
                "a scenario checks something: add at least one step",
            );
        }
    }
    let teardown = f
        .get("teardown")
        .map(|n| {
            uses::block(
                cx,
                n,
                "teardown",
                &mut scope,
                &mut env,
                &defaults.block("teardown"),
            )
        })
        .unwrap_or_default();
    // After the steps: a secret may name a value a step saves.
    let secrets = f
        .get("secrets")
        .map(|n| secrets(cx, n, &scope))
        .unwrap_or_default();
    Some(Scenario {
        name: name?,
        name_pos,
        file: cx.file.clone(),
        tags: tags.into_iter().map(|(t, _)| t).collect(),
        tenants: tenants.into_iter().map(|(t, _)| t).collect(),
        vars,
        include,
        exclusive,
        own_ecosystem,
        timeout,
        secrets,
        setup,
        steps: main?,
        teardown,
        skip_if,
        cases: Vec::new(),
    })
}

/// `own-ecosystem: { vars: { name: value } }`. The values are the file's
/// `[vars]` text, taken as written: a `${...}` in one is refused, as the
/// scenario's own values do not exist yet when the ecosystem starts.
fn own_settings(cx: &mut Cx<'_>, node: &Node) -> Option<OwnSettings> {
    let f = fields(cx, node, "`own-ecosystem`", &["vars"])?;
    f.require(cx, "vars", "vars: { name: value }")?;
    let vars = f.string_map(cx, "vars");
    if vars.is_empty() {
        cx.error(
            f.pos,
            "`own-ecosystem` sets nothing",
            "give it `vars: { name: value }`, entries of the ecosystem file's [vars] (or remove it)",
        );
        return None;
    }
    for (name, value) in &vars {
        if value.contains("${") {
            let pos = f.get("vars").map_or(f.pos, |n| n.pos);
            cx.error(
                pos,
                format!("`own-ecosystem` var `{name}` holds a reference: {value:?}"),
                "write the value itself: the ecosystem starts before the scenario's values exist",
            );
        }
    }
    Some(OwnSettings { pos: f.pos, vars })
}

/// The runtimes `skip-if: { runtime: ... }` names.
const RUNTIMES: [&str; 3] = ["process", "docker", "external"];

/// `skip-if: { runtime: external, lacks: [database], because: "..." }`.
fn skip_if(cx: &mut Cx<'_>, node: &Node) -> Option<SkipIf> {
    let f = fields(cx, node, "`skip-if`", &["runtime", "lacks", "because"])?;
    let one_or_list = |cx: &mut Cx<'_>, key: &str| -> Vec<(String, Pos)> {
        match f.get(key) {
            None => Vec::new(),
            Some(n) if matches!(n.value, yaml::Value::Seq(_)) => string_list(cx, n, key),
            Some(n) => super::read::string(cx, n, key)
                .map(|s| vec![(s, n.pos)])
                .unwrap_or_default(),
        }
    };
    let mut runtimes = Vec::new();
    for (r, pos) in one_or_list(cx, "runtime") {
        if RUNTIMES.contains(&r.as_str()) {
            runtimes.push(r);
        } else {
            cx.error(
                pos,
                format!("unknown runtime `{r}` in `skip-if`"),
                format!("the runtimes are {}", RUNTIMES.join(", ")),
            );
        }
    }
    let mut lacks = Vec::new();
    for (l, pos) in one_or_list(cx, "lacks") {
        match Need::parse(&l) {
            Some(need) => lacks.push(need),
            None => cx.error(
                pos,
                format!("`skip-if` cannot check whether the ecosystem lacks `{l}`"),
                format!("it can check {}", Need::NAMES.join(", ")),
            ),
        }
    }
    if f.get("runtime").is_none() && f.get("lacks").is_none() {
        cx.error(
            f.pos,
            "`skip-if` needs a condition: `runtime` or `lacks`",
            "write `skip-if: { runtime: external, because: \"needs chaos\" }`",
        );
    }
    let because = f.req_string(
        cx,
        "because",
        "because: \"the external deployment cannot be killed\"",
    )?;
    Some(SkipIf {
        pos: node.pos,
        runtimes,
        lacks,
        because,
    })
}

/// `vars: { email: "${email}" }`: values computed once per run, in order,
/// usable as `${email}` by the steps (and by later vars).
fn vars(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Vec<(String, serde_json::Value)> {
    let yaml::Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!(
                "`vars` must be a map of names to values, found {}",
                node.describe()
            ),
            "write `vars: { email: \"${email}\", amount: 4200 }`",
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let name = k.key_text();
        if scope.tenants.contains(&name) || super::vars::GENERATED.contains(&name.as_str()) {
            cx.error(
                k.pos,
                format!("var `{name}` hides a tenant or a generated value of the same name"),
                "give it another name",
            );
            continue;
        }
        scope.check(cx, v);
        scope.saved.insert(name.clone());
        out.push((name, v.to_json()));
    }
    out
}

/// `secrets: [password, { value: "${env.SMTP_PASSWORD}" }]`: the names of
/// vars or saved values, or values, redacted from all output.
fn secrets(cx: &mut Cx<'_>, node: &Node, scope: &Scope) -> Vec<Secret> {
    let hint = "list var or saved-value names, or values: `secrets: [password, { value: \"${env.SMTP_PASSWORD}\" }]`";
    let yaml::Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            format!("`secrets` must be a list, found {}", node.describe()),
            hint,
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        if let yaml::Value::Map(_) = &item.value {
            let Some(f) = fields(cx, item, "a `secrets` entry", &["value"]) else {
                continue;
            };
            let Some(value) = f.req_string(cx, "value", "value: \"${env.SMTP_PASSWORD}\"") else {
                continue;
            };
            if value.is_empty() {
                cx.error(item.pos, "an empty secret", "give the value to redact");
                continue;
            }
            scope.check(cx, item);
            out.push(Secret::Value(value));
            continue;
        }
        let Some(name) = super::read::string(cx, item, "secrets") else {
            continue;
        };
        if !scope.saved.contains(&name) {
            let known: Vec<&str> = scope.saved.iter().map(String::as_str).collect();
            let guess = super::read::closest(&name, &known)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            cx.error(
                item.pos,
                format!("secret `{name}` is not a var or a saved value of this scenario"),
                format!("{guess}a value itself is written `{{ value: \"...\" }}`"),
            );
            continue;
        }
        out.push(Secret::Name(name));
    }
    out
}

/// Loads the shared step files (`*.steps.yaml`, a map with `steps` only).
fn includes(
    cx: &mut Cx<'_>,
    node: &Node,
    scope: &mut Scope,
    row: Option<&Row>,
    used: &mut BTreeSet<String>,
    env: &mut Env,
    defaults: &Defaults,
) -> Vec<Include> {
    let base = cx.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    for (rel, pos) in string_list(cx, node, "include") {
        let path = base.join(&rel);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                cx.error(
                    pos,
                    format!("failed to read the included file `{}`: {e}", path.display()),
                    "the path is relative to this scenario file",
                );
                continue;
            }
        };
        let mut sub = Cx {
            file: path.clone(),
            errors: &mut *cx.errors,
        };
        let Some(mut root) = document(&mut sub, &text) else {
            continue;
        };
        if let Some(row) = row {
            root = cases::substitute(&root, row, used);
        }
        let Some(f) = fields(&mut sub, &root, "a shared step file", &["steps"]) else {
            continue;
        };
        let Some(list) = f.require(&mut sub, "steps", "steps: [ - sleep: 1s ]") else {
            continue;
        };
        let steps = uses::block(&mut sub, list, "steps", scope, env, defaults);
        out.push(Include { path, pos, steps });
    }
    out
}

/// The result of checking one file.
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub result: Result<Scenario, ScenarioError>,
}

/// Checks files and directories (their `*.yaml`/`*.yml` files, recursively,
/// except shared step files), then that no two scenarios share a name.
pub fn check_paths(paths: &[PathBuf]) -> Vec<FileReport> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect(p, &mut files);
        } else {
            files.push(p.clone());
        }
    }
    let mut reports: Vec<FileReport> = files
        .into_iter()
        .map(|path| FileReport {
            result: parse_file(&path),
            path,
        })
        .collect();
    let mut first: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    for report in &mut reports {
        let Ok(s) = &report.result else { continue };
        match first.get(&s.name) {
            None => {
                first.insert(s.name.clone(), (report.path.clone(), s.name_pos.line));
            }
            Some((other, line)) => {
                report.result = Err(ScenarioError(vec![Diagnostic {
                    file: report.path.clone(),
                    pos: s.name_pos,
                    message: format!("duplicate scenario name `{}`", s.name),
                    hint: format!(
                        "{}:{line} already uses it; scenario names are unique (they name the test cases)",
                        other.display()
                    ),
                }]));
            }
        }
    }
    reports
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        out.push(dir.to_path_buf());
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            // Step files (`use:`) are checked through the scenarios that use them.
            if name != super::uses::STEP_DIR {
                collect(&path, out);
            }
        } else if (name.ends_with(".yaml") || name.ends_with(".yml"))
            && !name.ends_with(INCLUDE_SUFFIX)
        {
            out.push(path);
        }
    }
}
