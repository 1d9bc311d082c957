//! Tag expressions: `--tag 'smoke and not slow'` selects the scenarios
//! whose tags make the expression true.
//!
//! The grammar is the usual one, `not` binding tighter than `and`, `and`
//! tighter than `or`, parentheses to group; a bare tag (`--tag smoke`) is
//! the expression "has this tag", so the old form keeps working. A
//! malformed expression is refused before anything runs, with the column
//! where it goes wrong: a selection that silently matched nothing would
//! pass a CI run that ran no test.

use std::fmt;

/// A parsed tag expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagExpr {
    Tag(String),
    Not(Box<TagExpr>),
    And(Box<TagExpr>, Box<TagExpr>),
    Or(Box<TagExpr>, Box<TagExpr>),
}

/// What is wrong with an expression, and at which column (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tag expression `{expr}`: {message} at column {col}")]
pub struct TagExprError {
    pub expr: String,
    pub col: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Tag(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Tag(t) => write!(f, "tag `{t}`"),
            Token::And => f.write_str("`and`"),
            Token::Or => f.write_str("`or`"),
            Token::Not => f.write_str("`not`"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
        }
    }
}

impl TagExpr {
    /// Parses `smoke`, `smoke and not slow`, `(crm or flow) and not chaos`.
    pub fn parse(text: &str) -> Result<TagExpr, TagExprError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            text,
            tokens: &tokens,
            at: 0,
        };
        let expr = p.or()?;
        if let Some((col, t)) = p.tokens.get(p.at) {
            return Err(p.error(*col, format!("unexpected {t}")));
        }
        Ok(expr)
    }

    /// Whether a scenario with these tags is selected.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self {
            TagExpr::Tag(t) => tags.iter().any(|x| x == t),
            TagExpr::Not(e) => !e.matches(tags),
            TagExpr::And(a, b) => a.matches(tags) && b.matches(tags),
            TagExpr::Or(a, b) => a.matches(tags) || b.matches(tags),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Token)>, TagExprError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let col = text[..at].chars().count() + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '(' || c == ')' {
            out.push((col, if c == '(' { Token::Open } else { Token::Close }));
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_tag_char(chars[i].1) {
            i += 1;
        }
        if i == start {
            return Err(TagExprError {
                expr: text.to_owned(),
                col,
                message: format!(
                    "`{c}` is not part of a tag (tags are letters, digits, `-`, `_`, `.`, `:`, `/`; \
                     combine them with and, or, not and parentheses)"
                ),
            });
        }
        let end = chars.get(i).map_or(text.len(), |(a, _)| *a);
        let word = &text[at..end];
        out.push((
            col,
            match word {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Tag(word.to_owned()),
            },
        ));
    }
    Ok(out)
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')
}

struct Parser<'t> {
    text: &'t str,
    tokens: &'t [(usize, Token)],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, col: usize, message: String) -> TagExprError {
        TagExprError {
            expr: self.text.to_owned(),
            col,
            message,
        }
    }

    /// The column just after the end, for "expected ... at the end".
    fn end_col(&self) -> usize {
        self.text.chars().count() + 1
    }

    fn or(&mut self) -> Result<TagExpr, TagExprError> {
        let mut left = self.and()?;
        while matches!(self.tokens.get(self.at), Some((_, Token::Or))) {
            self.at += 1;
            let right = self.and()?;
            left = TagExpr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<TagExpr, TagExprError> {
        let mut left = self.not()?;
        while matches!(self.tokens.get(self.at), Some((_, Token::And))) {
            self.at += 1;
            let right = self.not()?;
            left = TagExpr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<TagExpr, TagExprError> {
        if matches!(self.tokens.get(self.at), Some((_, Token::Not))) {
            self.at += 1;
            return Ok(TagExpr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<TagExpr, TagExprError> {
        let after = match self.at.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some((_, t)) => format!(" after {t}"),
            None => String::new(),
        };
        let Some((col, token)) = self.tokens.get(self.at) else {
            return Err(self.error(self.end_col(), format!("expected a tag{after}")));
        };
        self.at += 1;
        match token {
            Token::Tag(t) => Ok(TagExpr::Tag(t.clone())),
            Token::Open => {
                let inner = self.or()?;
                match self.tokens.get(self.at) {
                    Some((_, Token::Close)) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    Some((c, t)) => Err(self.error(*c, format!("expected `)`, found {t}"))),
                    None => Err(self.error(
                        self.end_col(),
                        format!("`(` at column {col} is never closed"),
                    )),
                }
            }
            other => Err(self.error(*col, format!("expected a tag{after}, found {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_bare_tag_selects_by_that_tag() {
        let e = TagExpr::parse("smoke").expect("valid");
        assert!(e.matches(&tags(&["smoke", "crm"])));
        assert!(!e.matches(&tags(&["crm"])));
    }

    #[test]
    fn not_binds_tighter_than_and_and_and_than_or() {
        let e = TagExpr::parse("smoke and not slow or chaos").expect("valid");
        assert!(e.matches(&tags(&["smoke"])));
        assert!(!e.matches(&tags(&["smoke", "slow"])));
        assert!(e.matches(&tags(&["slow", "chaos"])));
        let grouped = TagExpr::parse("smoke and not (slow or chaos)").expect("valid");
        assert!(!grouped.matches(&tags(&["smoke", "chaos"])));
        assert!(grouped.matches(&tags(&["smoke", "crm"])));
        assert!(TagExpr::parse("not not smoke")
            .expect("valid")
            .matches(&tags(&["smoke"])));
    }

    #[test]
    fn a_malformed_expression_names_the_column() {
        let cases = [
            ("smoke and", 10, "expected a tag after `and`"),
            ("smoke slow", 7, "unexpected tag `slow`"),
            ("(smoke or crm", 14, "`(` at column 1 is never closed"),
            (
                "smoke and or crm",
                11,
                "expected a tag after `and`, found `or`",
            ),
            ("smoke & crm", 7, "`&` is not part of a tag"),
            ("smoke)", 6, "unexpected `)`"),
            ("", 1, "expected a tag"),
        ];
        for (text, col, message) in cases {
            let e = TagExpr::parse(text).expect_err(text);
            assert_eq!(e.col, col, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
            assert!(e.to_string().contains(&format!("column {col}")), "{e}");
        }
    }
}
