//! Values computed when a step runs: times relative to now
//! (`${now+5m}`, `${now-1h:unix}`) and base64 of a text
//! (`${base64:user:${password}}`, `${base64url:...}`).
//!
//! They are spelled like the other references with an argument
//! (`${cross-app-token:...}`, `${env.NAME}`): a fixed word, then the
//! argument. A time in a committed file is stale the day after it is
//! written (a trial that ends "tomorrow", a token that expires in an
//! hour); a base64 text pasted into a file hides what it says (and, for a
//! `Basic` header, a password). Both are checked when the file is read,
//! so a typo (`now+5x`) fails `validate` with its `file:line:col`.

use std::time::Duration;

/// The hint of every error about a computed value.
pub(crate) const HINT: &str =
    "write `${now+5m}`, `${now-1h}`, `${now+2d:unix}` (units s, m, h, d), \
     `${base64:text}` or `${base64:user:${password}}` (`base64url:` for the URL-safe alphabet)";

/// A computed reference, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Computed<'t> {
    /// Now plus `offset` (negative: before now); `unix`: seconds since the
    /// epoch (a number) instead of RFC 3339 text.
    Now { offset_secs: i64, unix: bool },
    /// The base64 of a text that may hold references; `url_safe`: the
    /// URL-safe alphabet without padding (RFC 4648 §5).
    Base64 { url_safe: bool, of: &'t str },
}

/// `None` when `name` is not a computed reference, else what it computes
/// or what is wrong with it.
pub(crate) fn parse(name: &str) -> Option<Result<Computed<'_>, String>> {
    if let Some(of) = name.strip_prefix("base64:") {
        return Some(base64(of, false));
    }
    if let Some(of) = name.strip_prefix("base64url:") {
        return Some(base64(of, true));
    }
    let rest = name.strip_prefix("now")?;
    let (offset, format) = match rest.split_once(':') {
        Some((offset, format)) => (offset, Some(format)),
        None => (rest, None),
    };
    if !(offset.is_empty() || offset.starts_with('+') || offset.starts_with('-')) {
        return None;
    }
    if offset.is_empty() && format.is_none() {
        return None;
    }
    Some(now(offset, format))
}

fn base64(of: &str, url_safe: bool) -> Result<Computed<'_>, String> {
    if of.is_empty() {
        return Err("nothing to encode".to_owned());
    }
    Ok(Computed::Base64 { url_safe, of })
}

fn now(offset: &str, format: Option<&str>) -> Result<Computed<'static>, String> {
    let unix = match format {
        None | Some("rfc3339") => false,
        Some("unix") => true,
        Some(other) => {
            return Err(format!(
            "unknown format `{other}` (`:unix` for seconds since the epoch, or none for RFC 3339)"
        ))
        }
    };
    let offset_secs = if offset.is_empty() {
        0
    } else {
        let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
        let amount = offset[1..].trim();
        sign * i64::try_from(span(amount)?.as_secs()).map_err(|_| "the offset is too large")?
    };
    Ok(Computed::Now { offset_secs, unix })
}

/// `5m`, `1h30m`, `2d`: whole seconds, minutes, hours and days.
fn span(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not an offset like `5m`, `90s`, `1h30m` or `2d`");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = match rest[digits..].chars().next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .filter(|s| *s <= 100 * 365 * 86_400)
            .ok_or_else(|| format!("`{text}` is more than a hundred years"))?;
        rest = &rest[digits + 1..];
    }
    Ok(Duration::from_secs(total))
}

/// The value of a `Now` at `now`.
pub(crate) fn time(
    now: chrono::DateTime<chrono::Utc>,
    offset_secs: i64,
    unix: bool,
) -> serde_json::Value {
    let at = now + chrono::TimeDelta::seconds(offset_secs);
    if unix {
        serde_json::Value::from(at.timestamp())
    } else {
        serde_json::Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }
}

/// The base64 of `bytes`: standard alphabet with padding, or URL-safe
/// without.
pub(crate) fn encode(bytes: &[u8], url_safe: bool) -> String {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    if url_safe {
        URL_SAFE_NO_PAD.encode(bytes)
    } else {
        STANDARD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_formats_are_read() {
        let now = |offset_secs, unix| Some(Ok(Computed::Now { offset_secs, unix }));
        assert_eq!(parse("now+5m"), now(300, false));
        assert_eq!(parse("now-1h"), now(-3600, false));
        assert_eq!(parse("now+1h30m:unix"), now(5400, true));
        assert_eq!(parse("now+2d"), now(172_800, false));
        assert_eq!(parse("now:unix"), now(0, true));
        assert_eq!(parse("now"), None, "plain `now` is a generated value");
        assert_eq!(parse("nowhere"), None);
        assert_eq!(parse("email"), None);
    }

    #[test]
    fn bad_times_say_what_is_wrong() {
        let error = |text: &str| parse(text).unwrap().unwrap_err();
        assert!(
            error("now+5x").contains("not an offset like"),
            "{}",
            error("now+5x")
        );
        assert!(error("now+").contains("not an offset"));
        assert!(error("now+m").contains("not an offset"));
        assert!(error("now+5").contains("not an offset"));
        assert!(error("now+5m:iso").contains("unknown format `iso`"));
        assert!(error("now+99999999d").contains("more than a hundred years"));
    }

    #[test]
    fn base64_takes_a_text_with_references() {
        assert_eq!(
            parse("base64:user:${password}"),
            Some(Ok(Computed::Base64 {
                url_safe: false,
                of: "user:${password}"
            }))
        );
        assert_eq!(
            parse("base64url:x"),
            Some(Ok(Computed::Base64 {
                url_safe: true,
                of: "x"
            }))
        );
        assert_eq!(parse("base64:").unwrap().unwrap_err(), "nothing to encode");
        assert_eq!(encode(b"\xfb\xff?", false), "+/8/");
        assert_eq!(encode(b"\xfb\xff?", true), "-_8_");
    }

    #[test]
    fn times_are_relative_to_now() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            time(now, 300, false),
            serde_json::json!("2026-01-01T00:05:00.000Z")
        );
        assert_eq!(
            time(now, -3600, false),
            serde_json::json!("2025-12-31T23:00:00.000Z")
        );
        assert_eq!(time(now, 60, true), serde_json::json!(1_767_225_660));
    }
}
