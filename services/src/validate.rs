//! Input validation shared by the services; failures are 422s naming the field.
//!
//! Text is refused with control characters (other than tab, line feed and
//! carriage return) in every field: no client means them, and Postgres
//! cannot store NUL in `text` or `jsonb` (it failed the request with a
//! 500). Names and emails, which people read as identities, are also
//! refused with bidi overrides, embeddings and isolates (a name that
//! renders reversed); free text (descriptions, transcripts) may carry
//! them, as right-to-left writing does. An email's local part is a plain
//! dot-atom: no quoted strings or comments, nothing a mail client or an
//! HTML page would read as markup (`<script>@x.com`).

use serde_json::Value;

use crate::error::ApiError;

/// Whether `c` may not appear in any text (controls but tab, LF and CR).
fn is_refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Bidi overrides, embeddings and isolates (U+202A–U+202E, U+2066–U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Refuses control characters in `value` (unless the deliberate defect
/// `input-nul-500` lets them through to Postgres).
pub fn no_control(field: &str, value: &str) -> Result<(), ApiError> {
    if crate::defects::active("input-nul-500") {
        return Ok(());
    }
    if value.chars().any(is_refused_control) {
        return Err(ApiError::Validation(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(())
}

/// Refuses control characters in every string (and key) of a JSON value.
pub fn json_text(field: &str, value: &Value) -> Result<(), ApiError> {
    match value {
        Value::String(s) => no_control(field, s),
        Value::Array(items) => items.iter().try_for_each(|v| json_text(field, v)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            no_control(field, k)?;
            json_text(field, v)
        }),
        _ => Ok(()),
    }
}

/// Normalises and checks an email address (lower-cased, trimmed): a
/// dot-atom local part of at most 64 characters and a host name of two
/// labels or more.
pub fn email(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim().to_ascii_lowercase();
    let invalid = || ApiError::Validation(format!("`{field}` is not a valid email address"));
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let local_ok = local.len() <= 64
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext));
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if !local_ok || !domain.contains('.') || !labels_ok {
        return Err(invalid());
    }
    Ok(value)
}

/// Checks a required name (of a person, a company, a deal): [`text`]
/// without bidi controls.
pub fn name(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = text(field, value, max)?;
    refuse_bidi(field, &value)?;
    Ok(value)
}

/// Checks an optional name; blank becomes `None`.
pub fn optional_name(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let value = optional_text(field, value, max)?;
    if let Some(v) = &value {
        refuse_bidi(field, v)?;
    }
    Ok(value)
}

fn refuse_bidi(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().any(is_bidi_control) {
        return Err(ApiError::Validation(format!(
            "`{field}` must not contain bidi override characters"
        )));
    }
    Ok(())
}

/// Checks a required text field: non-blank and at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::Validation(format!("`{field}` must not be empty")));
    }
    optional_text(field, Some(value), max).map(|v| v.unwrap_or_default())
}

/// Checks an optional text field; blank becomes `None`.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(ApiError::Validation(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    no_control(field, value)?;
    Ok(Some(value.to_owned()))
}

/// The tables an object reference may name, by what it names.
pub const OBJECT_TABLES: [(&str, &str); 4] = [
    ("lead", "flow.leads"),
    ("contact", "crm.contacts"),
    ("deal", "crm.deals"),
    ("incident", "secure.incidents"),
];

/// Checks that the `what` (a key of [`OBJECT_TABLES`]) `id`, which the
/// request's `field` names, is the caller's tenant's: 404 otherwise, as
/// for an object of another tenant in a path. A foreign key alone would
/// take another tenant's id, and the services share one database.
pub async fn own_object(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    field: &str,
    what: &str,
    id: uuid::Uuid,
    tenant: &str,
) -> Result<(), ApiError> {
    if crate::defects::active("input-foreign-ids") {
        return Ok(());
    }
    let table = OBJECT_TABLES
        .iter()
        .find(|(w, _)| *w == what)
        .map(|(_, t)| *t)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no table of {what} objects")))?;
    let exists: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND tenant_id = $2)"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_one(&mut **tx)
    .await?;
    if exists {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "`{field}` names no {what} of this tenant"
        )))
    }
}

/// Checks that `value` is one of `allowed`.
pub fn one_of<'a>(field: &str, value: &'a str, allowed: &[&str]) -> Result<&'a str, ApiError> {
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::Validation(format!(
            "`{field}` must be one of {}, got {value:?}",
            allowed.join(", ")
        )))
    }
}

/// Page size and offset from query parameters, bounded.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(50);
    let offset = offset.unwrap_or(0);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Validation(
            "`limit` must be between 1 and 500".into(),
        ));
    }
    if offset < 0 {
        return Err(ApiError::Validation("`offset` must not be negative".into()));
    }
    Ok((limit, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email("e", " John@Example.COM ").unwrap(),
            "john@example.com"
        );
        for good in [
            "o'neil@x.io",
            "ada.l+tag@mail.example.co",
            "a_b-c@b.example",
        ] {
            assert!(email("e", good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "john",
            "john@",
            "@example.com",
            "john@example",
            "jo hn@example.com",
            "john@exa_mple.com",
            "john@-x.com",
            "a@b..com",
            "<script>@x.com",
            "'; drop table x; --@example.com",
            "../../etc/passwd@example.com",
            "a..b@example.com",
            "\"quoted\"@example.com",
            "a\u{202E}b@example.com",
            "a\u{0}b@example.com",
        ] {
            assert!(email("e", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn texts() {
        assert!(text("name", "  ", 10).is_err());
        assert_eq!(text("name", " Ann ", 10).unwrap(), "Ann");
        assert!(text("name", "abcdefghijk", 10).is_err());
        assert_eq!(optional_text("x", Some(""), 3).unwrap(), None);
    }

    #[test]
    fn control_characters_are_refused_in_all_text_and_bidi_controls_in_names() {
        for bad in ["a\u{0}b", "a\u{1}b", "a\u{7f}b", "a\u{9b}b"] {
            let err = text("summary", bad, 100).unwrap_err().to_string();
            assert_eq!(err, "`summary` must not contain control characters");
            assert!(optional_text("summary", Some(bad), 100).is_err());
            assert!(name("firstName", bad, 100).is_err());
        }
        assert_eq!(
            text("notes", "line one\nline\ttwo", 100).unwrap(),
            "line one\nline\ttwo"
        );
        for bidi in ["a\u{202E}b", "a\u{2066}b"] {
            let err = name("firstName", bidi, 100).unwrap_err().to_string();
            assert_eq!(err, "`firstName` must not contain bidi override characters");
            assert!(optional_name("company", Some(bidi), 100).is_err());
            assert!(
                text("description", bidi, 100).is_ok(),
                "free text keeps bidi marks"
            );
        }
        assert_eq!(name("title", " Deal ", 10).unwrap(), "Deal");
        assert!(json_text(
            "data",
            &serde_json::json!({ "a": ["ok", { "b": "x\u{0}" }] })
        )
        .is_err());
        assert!(json_text("data", &serde_json::json!({ "k\u{1}": 1 })).is_err());
        assert!(json_text("data", &serde_json::json!({ "a": ["ok", 1, null] })).is_ok());
    }
}
