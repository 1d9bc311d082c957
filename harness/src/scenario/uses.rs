//! Reusable steps: `- use: create-deal` with `with: {...}` runs the steps
//! of the step file `steps/create-deal.yaml` with those parameters, and
//! the values it `returns` become the caller's saved values.
//!
//! A `use` is expanded when the file is read, into ordinary steps that
//! remember the calls they came from ([`Step::via`], shown in failure
//! output as `caller:line → step-file:line`): the runner knows nothing of
//! step files, and every check of the format holds inside them, at their
//! own `file:line:col`. Expansion goes in three checks:
//!
//! 1. the step file on its own: every `${x}` in it is a parameter, a value
//!    one of its earlier steps saves, or a name defined everywhere
//!    (`${uuid}`, `${env.X}`, ...), and every name it `returns` is saved;
//!    reported in the step file, once however often it is used;
//! 2. the call: every parameter without a default is given, no unknown one
//!    is, each reported at the caller with the definition's location;
//! 3. the steps with the parameters put in (as a data-driven row's values
//!    are, `cases::substitute`), decoded like the caller's own steps; a
//!    problem only some parameters make names the call.
//!
//! The values a step file saves are its own: each is renamed for the call
//! (`create-deal#2.deal`), except those the caller takes, which are saved
//! under the caller's names, so two uses never see each other's values and
//! a step file cannot overwrite a caller's value it was not asked for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::cases::{self, Row};
use super::defaults::{self, Defaults};
use super::model::{Call, Step};
use super::read::{closest, fields, string, Cx};
use super::steps;
use super::vars::{Scope, GENERATED};
use super::yaml::{self, Node, Pos, Value};

/// The keys of a step file.
const STEP_FILE_KEYS: [&str; 4] = ["params", "defaults", "steps", "returns"];

/// The directory step files are looked up in.
pub const STEP_DIR: &str = "steps";

/// What the expansion of one scenario carries from call to call.
#[derive(Debug, Default)]
pub(crate) struct Env {
    /// Uses expanded so far (numbers the private names of each call).
    calls: usize,
    /// The step files being expanded, outermost first (cycles are refused).
    stack: Vec<PathBuf>,
    /// The `use` steps being expanded, outermost first.
    via: Vec<Call>,
}

/// Decodes a list of steps: `use` steps expanded, the others with the
/// block's defaults put in.
pub(crate) fn block(
    cx: &mut Cx<'_>,
    node: &Node,
    key: &str,
    scope: &mut Scope,
    env: &mut Env,
    defaults: &Defaults,
) -> Vec<Step> {
    let Value::Seq(items) = &node.value else {
        return steps::steps(cx, node, key, scope);
    };
    let mut out = Vec::new();
    for item in items {
        if is_use(item) {
            out.extend(expand(cx, item, scope, env));
            continue;
        }
        let item = defaults.apply(item);
        if let Some(mut step) = steps::step(cx, &item, scope, true) {
            step.via.clone_from(&env.via);
            out.push(step);
        }
    }
    out
}

fn is_use(item: &Node) -> bool {
    matches!(&item.value, Value::Map(entries) if entries.iter().any(|(k, _)| k.key_text() == "use"))
}

/// A parameter of a step file: required, or with a default.
#[derive(Debug, Clone)]
struct Param {
    name: String,
    pos: Pos,
    default: Option<Node>,
}

/// A step file as written.
#[derive(Debug, Clone)]
struct Definition {
    path: PathBuf,
    params: Vec<Param>,
    /// Where `params` is written (or the file's start).
    params_pos: Pos,
    defaults: Defaults,
    steps: Node,
    returns: Vec<(String, Pos)>,
}

impl Definition {
    fn at(&self, pos: Pos) -> String {
        format!("{}:{}:{}", self.path.display(), pos.line, pos.col)
    }
}

/// Where `use: name` finds its file: `name` with a `/` or ending in
/// `.yaml` is a path relative to the caller; a bare name is
/// `steps/<name>.yaml` in the caller's directory or the nearest parent
/// that has it (so a step file in `steps/` finds its siblings).
fn resolve(caller: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = caller.parent().unwrap_or(Path::new(""));
    if name.contains('/') || name.ends_with(".yaml") {
        let path = dir.join(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("`{}` is not a file", path.display()))
        };
    }
    let file = format!("{name}.yaml");
    let mut looked = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        let path = d.join(STEP_DIR).join(&file);
        if path.is_file() {
            return Ok(path);
        }
        looked.push(path.display().to_string());
        at = d.parent().filter(|p| !p.as_os_str().is_empty());
    }
    Err(format!("looked for {}", looked.join(", ")))
}

/// Reads a step file; its own problems are reported in it.
fn load(cx: &mut Cx<'_>, path: &Path) -> Option<Definition> {
    let mut sub = Cx {
        file: path.to_path_buf(),
        errors: &mut *cx.errors,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            sub.error(
                Pos { line: 1, col: 1 },
                format!("failed to read the step file: {e}"),
                "make it a readable YAML file",
            );
            return None;
        }
    };
    let root = match yaml::load(&text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            sub.error(
                Pos { line: 1, col: 1 },
                "the step file is empty",
                "write `params: [...]`, `steps: [...]` and `returns: [...]`",
            );
            return None;
        }
        Err(e) => {
            sub.error(e.pos, e.message, e.hint);
            return None;
        }
    };
    let f = fields(&mut sub, &root, "a step file", &STEP_FILE_KEYS)?;
    let params = f
        .get("params")
        .map(|n| params(&mut sub, n))
        .unwrap_or_default();
    let defaults = f
        .get("defaults")
        .map(|n| defaults::step_file_defaults(&mut sub, n))
        .unwrap_or_default();
    let returns = f
        .get("returns")
        .map(|n| super::read::string_list(&mut sub, n, "returns"))
        .unwrap_or_default();
    let steps = f
        .require(&mut sub, "steps", "steps: [ - http: { ... } ]")?
        .clone();
    Some(Definition {
        path: path.to_path_buf(),
        params_pos: f.key_pos("params").unwrap_or(f.pos),
        params,
        defaults,
        steps,
        returns,
    })
}

/// `params: [tenant, title, { currency: eur }]`: a bare name is required,
/// a one-key map gives a default.
fn params(cx: &mut Cx<'_>, node: &Node) -> Vec<Param> {
    let Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            format!("`params` must be a list, found {}", node.describe()),
            "write `params: [tenant, title, { currency: eur }]` (a map gives a default)",
        );
        return Vec::new();
    };
    let mut out: Vec<Param> = Vec::new();
    for item in items {
        let (name, pos, default) = match &item.value {
            Value::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                (k.key_text(), k.pos, Some(v.clone()))
            }
            Value::Scalar { .. } => match string(cx, item, "params") {
                Some(name) => (name, item.pos, None),
                None => continue,
            },
            _ => {
                cx.error(
                    item.pos,
                    format!(
                        "a parameter is a name or a one-key map, found {}",
                        item.describe()
                    ),
                    "write `tenant` (required) or `{ currency: eur }` (with a default)",
                );
                continue;
            }
        };
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid || GENERATED.contains(&name.as_str()) {
            cx.error(
                pos,
                format!("`{name}` cannot name a parameter"),
                "use letters, digits, `_` and `-`, starting with a letter, and not uuid, email or now",
            );
            continue;
        }
        if out.iter().any(|p| p.name == name) {
            cx.error(
                pos,
                format!("parameter `{name}` is declared twice"),
                "declare it once",
            );
            continue;
        }
        out.push(Param { name, pos, default });
    }
    out
}

/// The names one step of a step file saves: `save:` keys of an `http`
/// step (also under `eventually`), or what a nested `use` takes, as
/// (name in this file, name the used file returns).
#[derive(Debug, Clone, Default)]
struct Saves {
    http: Vec<String>,
    uses: Option<Vec<(String, String)>>,
}

impl Saves {
    fn names(&self) -> Vec<String> {
        let mut out = self.http.clone();
        out.extend(self.uses.iter().flatten().map(|(mine, _)| mine.clone()));
        out
    }
}

fn http_saves(item: &Node) -> Vec<String> {
    let mut out = Vec::new();
    let Value::Map(entries) = &item.value else {
        return out;
    };
    for (k, v) in entries {
        let http = match k.key_text().as_str() {
            "http" => Some(v),
            "eventually" => match &v.value {
                Value::Map(inner) => inner
                    .iter()
                    .find(|(ik, _)| ik.key_text() == "http")
                    .map(|(_, iv)| iv),
                _ => None,
            },
            _ => None,
        };
        if let Some(Node {
            value: Value::Map(fields),
            ..
        }) = http
        {
            for (fk, fv) in fields {
                if fk.key_text() == "save" {
                    if let Value::Map(saved) = &fv.value {
                        out.extend(saved.iter().map(|(sk, _)| sk.key_text()));
                    }
                }
            }
        }
    }
    out
}

/// What a `use` step takes: `save: { mine: returned }`, or every returned
/// name as it is.
fn taken(use_item: &Node, returns: &[(String, Pos)]) -> Vec<(String, String)> {
    if let Value::Map(entries) = &use_item.value {
        if let Some((
            _,
            Node {
                value: Value::Map(save),
                ..
            },
        )) = entries.iter().find(|(k, _)| k.key_text() == "save")
        {
            return save
                .iter()
                .filter_map(|(k, v)| match &v.value {
                    Value::Scalar { text, .. } => Some((k.key_text(), text.clone())),
                    _ => None,
                })
                .collect();
        }
    }
    returns
        .iter()
        .map(|(r, _)| (r.clone(), r.clone()))
        .collect()
}

/// Check 1: the step file's references and `returns`, in the step file.
/// The names each step saves, in order.
fn check_definition(cx: &mut Cx<'_>, def: &Definition) -> Vec<Saves> {
    let mut sub = Cx {
        file: def.path.clone(),
        errors: &mut *cx.errors,
    };
    let mut scope = Scope::default();
    for p in &def.params {
        scope.saved.insert(p.name.clone());
        // `${tenant.key}` of a parameter that names a tenant.
        scope.tenants.insert(p.name.clone());
        if let Some(d) = &p.default {
            scope.check(&mut sub, d);
        }
    }
    for v in def.defaults.values() {
        scope.check(&mut sub, v);
    }
    let mut all = Vec::new();
    let mut saved_here: BTreeSet<String> = BTreeSet::new();
    let Value::Seq(items) = &def.steps.value else {
        return all;
    };
    for item in items {
        let mut saves = Saves::default();
        if is_use(item) {
            if let Value::Map(entries) = &item.value {
                if let Some((_, with)) = entries.iter().find(|(k, _)| k.key_text() == "with") {
                    scope.check(&mut sub, with);
                }
                let returns = entries
                    .iter()
                    .find(|(k, _)| k.key_text() == "use")
                    .and_then(|(_, v)| match &v.value {
                        Value::Scalar { text, .. } => resolve(&def.path, text).ok(),
                        _ => None,
                    })
                    .and_then(|path| returns_of(&path))
                    .unwrap_or_default();
                saves.uses = Some(taken(item, &returns));
            }
        } else {
            scope.check(&mut sub, item);
            saves.http = http_saves(item);
        }
        for name in saves.names() {
            if def.params.iter().any(|p| p.name == name) {
                sub.error(
                    item.pos,
                    format!("a step saves `{name}`, the name of a parameter"),
                    "save it under another name",
                );
            }
            scope.saved.insert(name.clone());
            saved_here.insert(name);
        }
        all.push(saves);
    }
    for (name, pos) in &def.returns {
        if !saved_here.contains(name) {
            let known: Vec<&str> = saved_here.iter().map(String::as_str).collect();
            let guess = closest(name, &known)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            sub.error(
                *pos,
                format!("`returns` names `{name}`, which no step of this file saves"),
                format!("{guess}save it in a step: `save: {{ {name}: $.id }}`"),
            );
        }
    }
    all
}

/// The names a step file returns (for a nested `use` without `save:`).
fn returns_of(path: &Path) -> Option<Vec<(String, Pos)>> {
    let text = std::fs::read_to_string(path).ok()?;
    let root = yaml::load(&text).ok()??;
    let Value::Map(entries) = &root.value else {
        return None;
    };
    let (_, returns) = entries.iter().find(|(k, _)| k.key_text() == "returns")?;
    let Value::Seq(items) = &returns.value else {
        return None;
    };
    Some(items.iter().map(|n| (n.key_text(), n.pos)).collect())
}

/// Expands one `- use: name` step.
fn expand(cx: &mut Cx<'_>, item: &Node, scope: &mut Scope, env: &mut Env) -> Vec<Step> {
    let Some(f) = fields(cx, item, "a `use` step", &["use", "with", "save"]) else {
        return Vec::new();
    };
    let Some(use_node) = f.get("use") else {
        return Vec::new();
    };
    let Some(name) = string(cx, use_node, "use") else {
        return Vec::new();
    };
    let use_pos = f.key_pos("use").unwrap_or(item.pos);
    let path = match resolve(&cx.file, &name) {
        Ok(path) => path,
        Err(looked) => {
            cx.error(
                use_node.pos,
                format!("no step file `{name}`"),
                format!("{looked}; put it in `steps/{name}.yaml` next to the scenarios"),
            );
            return Vec::new();
        }
    };
    let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
    if env.stack.contains(&canonical) {
        let chain: Vec<String> = env
            .stack
            .iter()
            .chain(std::iter::once(&canonical))
            .map(|p| {
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        cx.error(
            use_node.pos,
            format!("`use: {name}` makes a cycle: {}", chain.join(" → ")),
            "a step file cannot use itself, directly or through others",
        );
        return Vec::new();
    }
    let Some(def) = load(cx, &path) else {
        return Vec::new();
    };
    let saves = check_definition(cx, &def);

    // Check 2: the call.
    let mut given: Vec<(String, Node)> = Vec::new();
    if let Some(with) = f.get("with") {
        match &with.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let key = k.key_text();
                    if def.params.iter().any(|p| p.name == key) {
                        scope.check(cx, v);
                        given.push((key, v.clone()));
                    } else {
                        let known: Vec<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
                        let guess = closest(&key, &known)
                            .map(|k| format!("did you mean `{k}`? "))
                            .unwrap_or_default();
                        cx.error(
                            k.pos,
                            format!("`{name}` has no parameter `{key}`"),
                            format!(
                                "{guess}its parameters ({}) are {}",
                                def.at(def.params_pos),
                                if known.is_empty() {
                                    "none".to_owned()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        );
                    }
                }
            }
            _ => cx.error(
                with.pos,
                format!(
                    "`with` must be a map of parameters, found {}",
                    with.describe()
                ),
                "write `with: { tenant: acme, title: Deal one }`",
            ),
        }
    }
    for p in &def.params {
        if p.default.is_none() && !given.iter().any(|(k, _)| *k == p.name) {
            cx.error(
                use_pos,
                format!("`use: {name}` needs the parameter `{}`", p.name),
                format!(
                    "`{}` is declared without a default at {}; add `with: {{ {}: ... }}`",
                    p.name,
                    def.at(p.pos),
                    p.name
                ),
            );
        }
    }
    let take: Vec<(String, String)> = match f.get("save") {
        None => def
            .returns
            .iter()
            .map(|(r, _)| (r.clone(), r.clone()))
            .collect(),
        Some(Node {
            value: Value::Map(entries),
            ..
        }) => entries
            .iter()
            .filter_map(|(k, v)| {
                let returned = string(cx, v, &k.key_text())?;
                if def.returns.iter().any(|(r, _)| *r == returned) {
                    Some((k.key_text(), returned))
                } else {
                    let known: Vec<&str> = def.returns.iter().map(|(r, _)| r.as_str()).collect();
                    cx.error(
                        v.pos,
                        format!("`{name}` returns no `{returned}`"),
                        format!(
                            "it returns {} ({})",
                            if known.is_empty() {
                                "nothing".to_owned()
                            } else {
                                known.join(", ")
                            },
                            def.path.display()
                        ),
                    );
                    None
                }
            })
            .collect(),
        Some(other) => {
            cx.error(
                other.pos,
                format!(
                    "`save` of a `use` must be a map, found {}",
                    other.describe()
                ),
                "write `save: { my-name: returned-name }`",
            );
            Vec::new()
        }
    };

    // Check 3: the steps with the parameters put in.
    env.calls += 1;
    let call = env.calls;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let private = |n: &str| format!("{stem}#{call}.{n}");
    let mut values: Vec<(String, Node)> = Vec::new();
    for p in &def.params {
        let Some(v) = given
            .iter()
            .find(|(k, _)| *k == p.name)
            .map(|(_, v)| v.clone())
            .or_else(|| p.default.clone())
        else {
            continue;
        };
        if let Value::Scalar { text, .. } = &v.value {
            for part in ["id", "key", "url", "peer-url", "host", "port"] {
                values.push((
                    format!("{}.{part}", p.name),
                    reference(&format!("{text}.{part}"), v.pos),
                ));
            }
        }
        values.push((p.name.clone(), v));
    }
    let mut renames: Vec<(String, String)> = Vec::new();
    for s in &saves {
        for n in s.names() {
            if renames.iter().any(|(o, _)| *o == n) {
                continue;
            }
            let target = take
                .iter()
                .find(|(_, r)| *r == n)
                .map_or_else(|| private(&n), |(mine, _)| mine.clone());
            renames.push((n, target));
        }
    }
    // A returned name taken under two caller names: the second a copy is not
    // possible without a run-time step; refuse it.
    for (i, (mine, returned)) in take.iter().enumerate() {
        if take[..i].iter().any(|(_, r)| r == returned) {
            cx.error(
                use_pos,
                format!("`{returned}` is taken twice (as `{mine}` too)"),
                "take each returned value once",
            );
        }
    }
    values.extend(
        renames
            .iter()
            .map(|(from, to)| (from.clone(), reference(to, item.pos))),
    );
    let row = Row {
        label: String::new(),
        values,
    };
    let mut unused = BTreeSet::new();
    let steps_node = rename_saves(
        &cases::substitute(&def.steps, &row, &mut unused),
        &renames,
        &saves,
    );
    let defaults = def
        .defaults
        .map_values(|v| cases::substitute(v, &row, &mut BTreeSet::new()));

    let mut inner = scope.clone();
    let mut errors = Vec::new();
    let mut sub = Cx {
        file: def.path.clone(),
        errors: &mut errors,
    };
    env.stack.push(canonical);
    env.via.push(Call {
        file: cx.file.clone(),
        pos: use_pos,
    });
    let out = block(&mut sub, &steps_node, "steps", &mut inner, env, &defaults);
    env.via.pop();
    env.stack.pop();
    for mut d in errors {
        // References were checked before the parameters went in (check 1
        // and the caller's `with`).
        if d.message.ends_with("is not defined here") {
            continue;
        }
        d.message = format!(
            "{} (in `use: {name}` at {}:{}:{})",
            d.message,
            cx.file.display(),
            use_pos.line,
            use_pos.col
        );
        cx.errors.push(d);
    }
    scope.saved.extend(take.into_iter().map(|(mine, _)| mine));
    scope.connections = inner.connections;
    out
}

/// A scalar that is exactly `${name}`.
fn reference(name: &str, pos: Pos) -> Node {
    Node {
        pos,
        value: Value::Scalar {
            text: format!("${{{name}}}"),
            plain: false,
        },
    }
}

/// The steps with the names they save renamed for the call: `save:` keys
/// of `http` steps (also under `eventually`), and a nested `use`'s
/// `save:` (written out in full when it had none).
fn rename_saves(steps: &Node, renames: &[(String, String)], saves: &[Saves]) -> Node {
    let Value::Seq(items) = &steps.value else {
        return steps.clone();
    };
    let to = |n: &str| {
        renames
            .iter()
            .find(|(from, _)| from == n)
            .map_or_else(|| n.to_owned(), |(_, to)| to.clone())
    };
    let rename_keys = |save: &Node| -> Node {
        match &save.value {
            Value::Map(entries) => Node {
                pos: save.pos,
                value: Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            let mut k = k.clone();
                            if let Value::Scalar { text, .. } = &mut k.value {
                                *text = to(text);
                            }
                            (k, v.clone())
                        })
                        .collect(),
                ),
            },
            _ => save.clone(),
        }
    };
    let rename_http = |http: &Node| -> Node {
        match &http.value {
            Value::Map(entries) => Node {
                pos: http.pos,
                value: Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            if k.key_text() == "save" {
                                (k.clone(), rename_keys(v))
                            } else {
                                (k.clone(), v.clone())
                            }
                        })
                        .collect(),
                ),
            },
            _ => http.clone(),
        }
    };
    let items = items
        .iter()
        .zip(saves.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(item, saves)| {
            let Value::Map(entries) = &item.value else {
                return item.clone();
            };
            let mut entries: Vec<(Node, Node)> = entries
                .iter()
                .map(|(k, v)| match k.key_text().as_str() {
                    "http" => (k.clone(), rename_http(v)),
                    "eventually" => match &v.value {
                        Value::Map(inner) => (
                            k.clone(),
                            Node {
                                pos: v.pos,
                                value: Value::Map(
                                    inner
                                        .iter()
                                        .map(|(ik, iv)| {
                                            if ik.key_text() == "http" {
                                                (ik.clone(), rename_http(iv))
                                            } else {
                                                (ik.clone(), iv.clone())
                                            }
                                        })
                                        .collect(),
                                ),
                            },
                        ),
                        _ => (k.clone(), v.clone()),
                    },
                    _ => (k.clone(), v.clone()),
                })
                .collect();
            if let Some(Saves {
                uses: Some(pairs), ..
            }) = saves
            {
                // A nested use: its `save:` says exactly what it takes, renamed.
                entries.retain(|(k, _)| k.key_text() != "save");
                let save = Node {
                    pos: item.pos,
                    value: Value::Map(
                        pairs
                            .iter()
                            .map(|(mine, returned)| {
                                (
                                    Node {
                                        pos: item.pos,
                                        value: Value::Scalar {
                                            text: to(mine),
                                            plain: false,
                                        },
                                    },
                                    Node {
                                        pos: item.pos,
                                        value: Value::Scalar {
                                            text: returned.clone(),
                                            plain: false,
                                        },
                                    },
                                )
                            })
                            .collect(),
                    ),
                };
                entries.push((
                    Node {
                        pos: item.pos,
                        value: Value::Scalar {
                            text: "save".to_owned(),
                            plain: true,
                        },
                    },
                    save,
                ));
            }
            Node {
                pos: item.pos,
                value: Value::Map(entries),
            }
        })
        .collect();
    Node {
        pos: steps.pos,
        value: Value::Seq(items),
    }
}
