//! Input validation shared by the services; failures are 422s naming the field.

use crate::error::ApiError;

/// Normalises and checks an email address (lower-cased, trimmed).
pub fn email(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim().to_ascii_lowercase();
    let invalid = || ApiError::Validation(format!("`{field}` is not a valid email address"));
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if local.is_empty() || local.len() > 64 || !domain.contains('.') || !labels_ok {
        return Err(invalid());
    }
    Ok(value)
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
    Ok(Some(value.to_owned()))
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
}
