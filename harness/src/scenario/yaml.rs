//! A YAML tree that remembers where every node was written.
//!
//! `serde_yaml` loses positions once a document becomes a value, and its
//! derive errors name only the first problem. The scenario checker wants every
//! problem with its line and column, and duplicate keys refused, so the file
//! is loaded from `yaml-rust2`'s marked events into this small tree instead.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Self {
        Self {
            line: m.line().max(1),
            col: m.col() + 1,
        }
    }
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) pos: Pos,
    pub(crate) value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A scalar; `plain` is false for quoted and block scalars (always strings).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys keep their own positions, in file order.
    Map(Vec<(Node, Node)>),
}

/// A problem found while loading, before the scenario's shape is looked at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
    pub(crate) hint: String,
}

impl Node {
    /// What the node is, for "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> &'static str {
        match &self.value {
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
            Value::Scalar { plain: false, .. } => "a string",
            Value::Scalar { text, plain: true } => match scalar_json(text) {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                _ => "a string",
            },
        }
    }

    /// The node as JSON: plain scalars are typed the YAML 1.2 core way.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Scalar { text, plain: true } => scalar_json(text),
            Value::Scalar { text, plain: false } => serde_json::Value::String(text.clone()),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A key as text (non-scalar keys are refused by the loader).
    pub(crate) fn key_text(&self) -> String {
        match &self.value {
            Value::Scalar { text, .. } => text.clone(),
            _ => String::new(),
        }
    }
}

/// Types a plain scalar (`null`, `~`, booleans, integers, floats, else text).
pub(crate) fn scalar_json(text: &str) -> serde_json::Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return serde_json::Value::Null,
        "true" | "True" | "TRUE" => return serde_json::Value::Bool(true),
        "false" | "False" | "FALSE" => return serde_json::Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return i.into();
    }
    let numeric = text
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if numeric {
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return serde_json::Value::Number(n);
        }
    }
    serde_json::Value::String(text.to_owned())
}

/// Loads one YAML document; `Ok(None)` for an empty file.
pub(crate) fn load(text: &str) -> Result<Option<Node>, LoadError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let message = e.info().to_owned();
        return Err(LoadError {
            pos: Pos::from_marker(*e.marker()),
            hint: yaml_hint(&message),
            message: format!("invalid YAML: {message}"),
        });
    }
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.root)
}

fn yaml_hint(message: &str) -> String {
    if message.contains("tab") {
        "indent with spaces, not tabs".to_owned()
    } else {
        "check the indentation and quoting here: a value containing `: `, `#`, or starting \
         with `{`, `[`, `*`, `&`, `!`, `%` or `@` needs quotes"
            .to_owned()
    }
}

#[derive(Default)]
struct Builder {
    /// Open collections: the node and, for maps, a key waiting for its value.
    stack: Vec<(Node, Option<Node>)>,
    root: Option<Node>,
    documents: usize,
    error: Option<LoadError>,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: &str, hint: &str) {
        if self.error.is_none() {
            self.error = Some(LoadError {
                pos,
                message: message.to_owned(),
                hint: hint.to_owned(),
            });
        }
    }

    fn push_value(&mut self, node: Node) {
        let Some((parent, pending)) = self.stack.last_mut() else {
            self.root = Some(node);
            return;
        };
        let mut problem = None;
        match &mut parent.value {
            Value::Seq(items) => items.push(node),
            Value::Map(entries) => match pending.take() {
                None if !matches!(node.value, Value::Scalar { .. }) => {
                    problem = Some((
                        node.pos,
                        "a key must be a plain name, not a list or a map".to_owned(),
                        "write `name: value`; quote a key containing `[` or `{`".to_owned(),
                    ));
                    *pending = Some(node);
                }
                None => {
                    let name = node.key_text();
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.key_text() == name) {
                        problem = Some((
                            node.pos,
                            format!("duplicate key `{name}`"),
                            format!(
                                "`{name}` is already set at line {}; keep one of them",
                                first.pos.line
                            ),
                        ));
                    }
                    *pending = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
            Value::Scalar { .. } => {}
        }
        if let Some((pos, message, hint)) = problem {
            self.fail(pos, &message, &hint);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = Pos::from_marker(mark);
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(
                        pos,
                        "a second YAML document",
                        "one scenario per file: move it to a file of its own",
                    );
                }
            }
            Event::Alias(_) => self.fail(
                pos,
                "anchors and aliases are not supported",
                "repeat the value, or share steps through `include`",
            ),
            Event::Scalar(text, style, _, _) => {
                let plain = style == TScalarStyle::Plain;
                self.push_value(Node {
                    pos,
                    value: Value::Scalar { text, plain },
                });
            }
            Event::SequenceStart(..) => self.stack.push((
                Node {
                    pos,
                    value: Value::Seq(Vec::new()),
                },
                None,
            )),
            Event::MappingStart(..) => self.stack.push((
                Node {
                    pos,
                    value: Value::Map(Vec::new()),
                },
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((mut node, _)) = self.stack.pop() {
                    // A block collection's start is marked after its first
                    // entry; name the first entry instead.
                    let first = match &node.value {
                        Value::Map(entries) => entries.first().map(|(k, _)| k.pos),
                        Value::Seq(items) => items.first().map(|n| n.pos),
                        Value::Scalar { .. } => None,
                    };
                    if let Some(first) = first.filter(|f| *f < node.pos) {
                        node.pos = first;
                    }
                    self.push_value(node);
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}
