//! Stripe's search query language: a small hand-written parser and the
//! matcher the search endpoints ([`super::search`]) run over stored objects.
//!
//! Why a real parser: an application's search query is code, and a mock that
//! matched everything on a query it did not understand would let a wrong query
//! pass every test. So every query is parsed completely, checked against the
//! fields Stripe lets one search on for that resource, and refused with a
//! message naming the problem and its position when Stripe would refuse it.
//!
//! The language, as Stripe documents it:
//!
//! * a clause is `field op value`: `email:'amy@example.com'`,
//!   `metadata['order']:'6735'`, `amount>1000`, `created<=1700000000`;
//! * `:` is an exact match (case-insensitive for string fields, exact for
//!   token fields such as ids and statuses), `~` a substring match of at least
//!   three characters on string fields, `>`, `<`, `>=`, `<=` compare numbers;
//! * string values are quoted (`'...'` or `"..."`, a backslash escapes a
//!   quote), numbers may be bare or quoted, `null` matches a missing value;
//! * a leading `-` negates a clause;
//! * clauses are joined by spaces or `AND` (case-insensitive), or by `OR`;
//!   `AND` and `OR` cannot be mixed in one query, and there are no parentheses;
//! * at most ten clauses.

use serde_json::Value;

/// Most clauses one query may hold.
const MAX_CLAUSES: usize = 10;
/// Fewest characters a substring (`~`) match accepts.
const MIN_SUBSTRING: usize = 3;

/// How a searchable field matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// Free text: `:` case-insensitive, `~` substring.
    String,
    /// Ids and enumerations: `:` exact and case-sensitive.
    Token,
    /// Integers (amounts, timestamps): `:` and the comparators.
    Numeric,
}

/// The searchable fields of one resource, as Stripe lists them.
#[derive(Debug)]
pub(crate) struct Fields {
    /// The resource as Stripe names it in messages (`customers`).
    pub(crate) resource: &'static str,
    pub(crate) fields: &'static [(&'static str, FieldKind)],
}

impl Fields {
    fn kind(&self, name: &str) -> Option<FieldKind> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }
}

/// A query that does not parse or asks for what Stripe does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError {
    /// Character offset (0-based) where the problem is.
    pub(crate) position: usize,
    pub(crate) message: String,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Invalid search query at position {}: {}",
            self.position, self.message
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Substring,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => ":",
            Op::Substring => "~",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Field(String, FieldKind),
    Metadata(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Text(String),
    Number(i64),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    negated: bool,
    target: Target,
    op: Op,
    value: Operand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Joiner {
    And,
    Or,
}

/// A parsed query, ready to match objects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    clauses: Vec<Clause>,
    joiner: Joiner,
}

impl Query {
    /// Parses `text` for the resource whose searchable fields are `fields`.
    pub(crate) fn parse(text: &str, fields: &Fields) -> Result<Self, QueryError> {
        Parser {
            chars: text.chars().collect(),
            at: 0,
            fields,
        }
        .query()
    }

    /// Whether `object` satisfies the query.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let mut results = self.clauses.iter().map(|c| c.matches(object));
        match self.joiner {
            Joiner::And => results.all(|r| r),
            Joiner::Or => results.any(|r| r),
        }
    }
}

impl Clause {
    fn matches(&self, object: &Value) -> bool {
        let found = match &self.target {
            Target::Field(name, kind) => {
                let value = name.split('.').fold(object, |v, part| &v[part]);
                compare(value, *kind, self.op, &self.value)
            }
            Target::Metadata(key) => {
                let value = &object["metadata"][key.as_str()];
                compare(value, FieldKind::Token, self.op, &self.value)
            }
        };
        found != self.negated
    }
}

fn compare(value: &Value, kind: FieldKind, op: Op, operand: &Operand) -> bool {
    match operand {
        Operand::Null => value.is_null(),
        Operand::Number(n) => {
            let Some(v) = value.as_i64() else {
                return false;
            };
            match op {
                Op::Eq => v == *n,
                Op::Gt => v > *n,
                Op::Lt => v < *n,
                Op::Ge => v >= *n,
                Op::Le => v <= *n,
                Op::Substring => false,
            }
        }
        Operand::Text(wanted) => {
            let Some(v) = value.as_str() else {
                return false;
            };
            match (kind, op) {
                (FieldKind::String, Op::Substring) => {
                    v.to_lowercase().contains(&wanted.to_lowercase())
                }
                (FieldKind::String, _) => v.to_lowercase() == wanted.to_lowercase(),
                _ => v == wanted,
            }
        }
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    at: usize,
    fields: &'a Fields,
}

impl Parser<'_> {
    fn error<T>(&self, position: usize, message: impl Into<String>) -> Result<T, QueryError> {
        Err(QueryError {
            position,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_spaces(&mut self) -> bool {
        let start = self.at;
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
        self.at > start
    }

    /// `AND` or `OR` (any case) followed by whitespace, at the cursor.
    fn keyword(&mut self) -> Option<Joiner> {
        for (word, joiner) in [("and", Joiner::And), ("or", Joiner::Or)] {
            let end = self.at + word.len();
            let matches = self.chars.get(self.at..end).is_some_and(|w| {
                w.iter()
                    .zip(word.chars())
                    .all(|(c, k)| c.to_ascii_lowercase() == k)
            }) && self.chars.get(end).is_none_or(|c| c.is_whitespace());
            if matches {
                self.at = end;
                return Some(joiner);
            }
        }
        None
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        self.skip_spaces();
        if self.peek().is_none() {
            return self.error(
                0,
                "the query is empty; write at least one clause such as `email:'amy@example.com'`",
            );
        }
        let mut clauses = vec![self.clause()?];
        let mut joiner: Option<(Joiner, usize)> = None;
        loop {
            let spaced = self.skip_spaces();
            if self.peek().is_none() {
                break;
            }
            let at = self.at;
            let this = match self.keyword() {
                Some(j) => {
                    self.skip_spaces();
                    j
                }
                None if spaced => Joiner::And,
                None => {
                    return self.error(
                        at,
                        format!(
                            "unexpected `{}` after a complete clause; separate clauses with a space, AND or OR",
                            self.chars[at]
                        ),
                    )
                }
            };
            match joiner {
                Some((first, first_at)) if first != this => {
                    return self.error(
                        at,
                        format!(
                            "AND and OR cannot be combined in one query (the query joins with {} at position {first_at}); Stripe's search has no parentheses, so run separate searches",
                            name(first)
                        ),
                    )
                }
                Some(_) => {}
                None => joiner = Some((this, at)),
            }
            if self.peek().is_none() {
                return self.error(at, format!("{} must be followed by a clause", name(this)));
            }
            if clauses.len() == MAX_CLAUSES {
                return self.error(
                    self.at,
                    format!("a query may have at most {MAX_CLAUSES} clauses"),
                );
            }
            clauses.push(self.clause()?);
        }
        Ok(Query {
            clauses,
            joiner: joiner.map_or(Joiner::And, |(j, _)| j),
        })
    }

    fn clause(&mut self) -> Result<Clause, QueryError> {
        let negated = self.peek() == Some('-');
        if negated {
            self.at += 1;
        }
        let target = self.target()?;
        let op_at = self.at;
        let op = self.op()?;
        let value_at = self.at;
        let mut value = self.value()?;
        self.check(&target, op, &value, op_at, value_at)?;
        if let (Target::Field(_, FieldKind::Numeric), Operand::Text(t)) = (&target, &value) {
            if let Ok(n) = t.parse() {
                value = Operand::Number(n);
            }
        }
        Ok(Clause {
            negated,
            target,
            op,
            value,
        })
    }

    fn target(&mut self) -> Result<Target, QueryError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.at += 1;
        }
        let name: String = self.chars[start..self.at].iter().collect();
        if name.is_empty() {
            return match self.peek() {
                Some(c) => self.error(
                    start,
                    format!(
                        "expected a field name such as `email` or `metadata['key']`, found `{c}`"
                    ),
                ),
                None => self.error(start, "expected a field name at the end of the query"),
            };
        }
        if name == "metadata" {
            if self.peek() != Some('[') {
                return self.error(
                    self.at,
                    "metadata is searched by key: write `metadata['key']:'value'`",
                );
            }
            self.at += 1;
            let key_at = self.at;
            let key = match self.peek() {
                Some('\'' | '"') => self.quoted()?,
                _ => {
                    return self.error(key_at, "the metadata key must be quoted: `metadata['key']`")
                }
            };
            if self.peek() != Some(']') {
                return self.error(self.at, "expected `]` after the metadata key");
            }
            self.at += 1;
            return Ok(Target::Metadata(key));
        }
        match self.fields.kind(&name) {
            Some(kind) => Ok(Target::Field(name, kind)),
            None => self.error(
                start,
                format!(
                    "field `{name}` is an unsupported search field for resource `{res}` (supported: {list}, metadata['key']). See https://stripe.com/docs/search#query-fields-for-{res}",
                    res = self.fields.resource,
                    list = self.fields.fields.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                ),
            ),
        }
    }

    fn op(&mut self) -> Result<Op, QueryError> {
        let at = self.at;
        let (op, len) = match (self.peek(), self.chars.get(at + 1)) {
            (Some('>'), Some('=')) => (Op::Ge, 2),
            (Some('<'), Some('=')) => (Op::Le, 2),
            (Some(':'), _) => (Op::Eq, 1),
            (Some('~'), _) => (Op::Substring, 1),
            (Some('>'), _) => (Op::Gt, 1),
            (Some('<'), _) => (Op::Lt, 1),
            (Some(c), _) => {
                return self.error(
                    at,
                    format!("expected an operator (`:`, `~`, `>`, `<`, `>=` or `<=`) after the field, found `{c}`"),
                )
            }
            (None, _) => {
                return self.error(at, "expected an operator (`:`, `~`, `>`, `<`, `>=` or `<=`) after the field, found the end of the query")
            }
        };
        self.at += len;
        Ok(op)
    }

    fn value(&mut self) -> Result<Operand, QueryError> {
        let at = self.at;
        match self.peek() {
            Some('\'' | '"') => Ok(Operand::Text(self.quoted()?)),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                self.at += 1;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.at += 1;
                }
                let text: String = self.chars[at..self.at].iter().collect();
                if self.peek().is_some_and(|c| !c.is_whitespace()) {
                    return self.error(
                        at,
                        "a value that is not a number must be in quotes: `field:'value'`",
                    );
                }
                text.parse()
                    .map(Operand::Number)
                    .or_else(|_| self.error(at, format!("`{text}` is not an integer")))
            }
            Some(_) => {
                let end = self.chars[at..]
                    .iter()
                    .position(|c| c.is_whitespace())
                    .map_or(self.chars.len(), |n| at + n);
                let word: String = self.chars[at..end].iter().collect();
                if word == "null" {
                    self.at = end;
                    return Ok(Operand::Null);
                }
                self.error(
                    at,
                    format!("the value `{word}` must be in quotes: `'{word}'` (only numbers and null go unquoted)"),
                )
            }
            None => self.error(
                at,
                "expected a value after the operator, found the end of the query",
            ),
        }
    }

    /// A `'...'` or `"..."` string; a backslash escapes the next character.
    fn quoted(&mut self) -> Result<String, QueryError> {
        let open_at = self.at;
        let quote = self.chars[open_at];
        self.at += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => {
                    return self.error(
                        open_at,
                        format!("the string opened with {quote} here is never closed"),
                    )
                }
                Some('\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(c) => text.push(c),
                        None => {
                            return self.error(
                                self.at - 1,
                                "a backslash at the end of the query escapes nothing",
                            )
                        }
                    }
                }
                Some(c) if c == quote => {
                    self.at += 1;
                    return Ok(text);
                }
                Some(c) => text.push(c),
            }
            self.at += 1;
        }
    }

    /// What Stripe refuses although it parses: operators the field's type
    /// does not have, short substrings, words where numbers belong.
    fn check(
        &self,
        target: &Target,
        op: Op,
        value: &Operand,
        op_at: usize,
        value_at: usize,
    ) -> Result<(), QueryError> {
        let (field, kind) = match target {
            Target::Field(name, kind) => (name.clone(), *kind),
            Target::Metadata(key) => (format!("metadata['{key}']"), FieldKind::Token),
        };
        match (kind, op, value) {
            (_, Op::Eq, Operand::Null) => Ok(()),
            (_, _, Operand::Null) => self.error(value_at, format!("null can only be matched with `:` (`{field}:null`)")),
            (FieldKind::String, Op::Substring, Operand::Text(t)) if t.chars().count() < MIN_SUBSTRING => self.error(
                value_at,
                format!("a substring match (`~`) needs at least {MIN_SUBSTRING} characters, `{t}` has {}", t.chars().count()),
            ),
            (FieldKind::String, Op::Eq | Op::Substring, _) => Ok(()),
            (_, Op::Substring, _) => self.error(
                op_at,
                format!("`{field}` does not support substring matching (`~`); only string fields such as email or name do. Use `{field}:` for an exact match"),
            ),
            (FieldKind::Numeric, _, Operand::Number(_)) => Ok(()),
            (FieldKind::Numeric, _, Operand::Text(t)) => match t.parse::<i64>() {
                Ok(_) => Ok(()),
                Err(_) => self.error(value_at, format!("`{field}` is numeric; `{t}` is not an integer")),
            },
            (_, Op::Eq, _) => Ok(()),
            (_, other, _) => self.error(
                op_at,
                format!("`{field}` is not numeric and cannot be compared with `{}`; use `:`", other.text()),
            ),
        }
    }
}

fn name(joiner: Joiner) -> &'static str {
    match joiner {
        Joiner::And => "AND",
        Joiner::Or => "OR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CUSTOMERS: Fields = Fields {
        resource: "customers",
        fields: &[
            ("created", FieldKind::Numeric),
            ("email", FieldKind::String),
            ("name", FieldKind::String),
            ("status", FieldKind::Token),
        ],
    };

    fn matches(query: &str, object: &Value) -> bool {
        Query::parse(query, &CUSTOMERS)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .matches(object)
    }

    fn refused(query: &str) -> QueryError {
        Query::parse(query, &CUSTOMERS).expect_err(query)
    }

    #[test]
    fn clauses_match_as_stripe_documents() {
        let ada = json!({"email": "Ada@Example.com", "name": "Ada Lovelace", "created": 1_700_000_100,
            "status": "active", "metadata": {"tier": "gold"}, "phone": null});
        assert!(
            matches("email:'ada@example.com'", &ada),
            "exact string is case-insensitive"
        );
        assert!(matches(r#"email:"ADA@example.com""#, &ada));
        assert!(
            !matches("email:'ada@example'", &ada),
            ": is not a substring match"
        );
        assert!(matches("name~'lovel'", &ada));
        assert!(
            !matches("status:'Active'", &ada),
            "tokens are case-sensitive"
        );
        assert!(matches("metadata['tier']:'gold'", &ada));
        assert!(!matches("metadata['tier']:'silver'", &ada));
        assert!(matches(r#"metadata["missing"]:null"#, &ada));
        assert!(matches("created>1700000000 created<=1700000100", &ada));
        assert!(!matches("created>=1700000101", &ada));
        assert!(
            matches("created:'1700000100'", &ada),
            "numbers may be quoted"
        );
        assert!(matches("-email:'eve@example.com'", &ada));
        assert!(!matches("-name~'ada'", &ada));
        assert!(matches("email:'eve@x.com' OR name:'ada lovelace'", &ada));
        assert!(!matches("email:'eve@x.com' and name:'ada lovelace'", &ada));
        assert!(
            matches(r"name:'it\'s'", &json!({"name": "It's"})),
            "backslash escapes"
        );
    }

    #[test]
    fn malformed_or_forbidden_queries_are_refused_with_a_position() {
        let e = refused("email:'a@x.com' AND name:'b' OR name:'c'");
        assert_eq!(e.position, 29);
        assert!(e.message.contains("AND and OR cannot be combined"), "{e}");
        let e = refused("email:amy@x.com");
        assert_eq!(e.position, 6);
        assert!(e.message.contains("must be in quotes"), "{e}");
        let e = refused("colour:'red'");
        assert_eq!(e.position, 0);
        assert!(e.message.contains("unsupported search field"), "{e}");
        let e = refused("email:'unterminated");
        assert_eq!(e.position, 6);
        assert!(e.message.contains("never closed"), "{e}");
        assert!(refused("email~'ab'").message.contains("at least 3"));
        assert!(refused("status~'act'")
            .message
            .contains("does not support substring"));
        assert!(refused("email>'a'").message.contains("cannot be compared"));
        assert!(refused("created>'soon'").message.contains("not an integer"));
        assert_eq!(refused("email").position, 5);
        assert_eq!(refused("email:'a' AND").position, 10);
        assert_eq!(refused("   ").position, 0);
        assert!(refused("metadata:'x'").message.contains("metadata['key']"));
        let eleven = ["created>1"; 11].join(" ");
        assert!(refused(&eleven).message.contains("at most 10"));
        assert_eq!(refused("email:'a'name:'b'").position, 9);
    }
}
