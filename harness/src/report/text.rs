//! Text helpers shared by the writers: XML/HTML escaping and the way
//! durations are shown.
//!
//! One escaping function serves JUnit XML and HTML: both need `&`, `<`, `>`,
//! `"` and `'` escaped, and both must not carry the control characters XML 1.0
//! forbids (a log line with an ANSI colour code would otherwise make the whole
//! `junit.xml` unreadable). Those are replaced by a visible `\u{1b}` so the
//! reader still sees that something was there.

use std::fmt::Write as _;

use super::model::{MessageKind, Section, Status};

/// Escapes `s` for an XML or HTML text node (quotes stay as they are, so a
/// JSON body in `junit.xml` still reads as JSON).
pub(crate) fn escape_text(s: &str) -> String {
    escape(s, false)
}

/// Escapes `s` for a double- or single-quoted XML or HTML attribute value.
/// Newlines and tabs become character references so parsers keep them
/// (attribute value normalisation would turn them into spaces).
pub(crate) fn escape_attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&#39;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' if attribute => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' | '\r' | '\t' => out.push(c),
            c if is_xml_char(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out
}

/// Whether XML 1.0 allows `c` in a document (`Char` production; Rust strings
/// cannot hold surrogates). Also leaves out the C1 controls, which XML allows
/// but HTML treats as errors and no reader wants to see raw.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
}

/// A duration for people: `850 µs`, `12.3 ms`, `1.24 s`, `2 min 03 s`.
pub(crate) fn duration(ms: f64) -> String {
    if !ms.is_finite() {
        return "?".to_owned();
    }
    let ms = ms.max(0.0);
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        let secs = (ms / 1000.0).round();
        format!("{:.0} min {:02.0} s", (secs / 60.0).floor(), secs % 60.0)
    }
}

/// Seconds with millisecond precision, as JUnit's `time` attribute wants.
pub(crate) fn seconds(ms: f64) -> String {
    let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
    format!("{:.3}", ms / 1000.0)
}

/// The time a step or scenario spent in the engine, that is not waiting on
/// the system under test; never negative, whatever rounding did to the inputs.
pub(crate) fn engine_ms(duration_ms: f64, service_ms: f64) -> f64 {
    (duration_ms - service_ms).max(0.0)
}

/// `s` cut to at most `max` characters, with `…` when it was cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The name of a status, as the JSON report spells it.
pub(crate) fn status(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    }
}

/// The name of a section, as the JSON report spells it.
pub(crate) fn section(section: Section) -> &'static str {
    match section {
        Section::Setup => "setup",
        Section::Include => "include",
        Section::Steps => "steps",
        Section::Teardown => "teardown",
    }
}

/// The name of a message kind, as the JSON report spells it.
pub(crate) fn message_kind(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Request => "request",
        MessageKind::Response => "response",
        MessageKind::Event => "event",
        MessageKind::Job => "job",
        MessageKind::Query => "query",
        MessageKind::Fault => "fault",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            escape_attr(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            escape_text(r#"<a href="x">&'</a>"#),
            r#"&lt;a href="x"&gt;&amp;'&lt;/a&gt;"#
        );
    }

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(escape_text("\u{1b}[31mred\u{0}"), "\\u{1b}[31mred\\u{0}");
        assert_eq!(escape_text("\u{85}\u{fffe}"), "\\u{85}\\u{fffe}");
    }

    #[test]
    fn whitespace_is_kept_in_text_and_encoded_in_attributes() {
        assert_eq!(escape_text("a\n\tb\r"), "a\n\tb\r");
        assert_eq!(escape_attr("a\n\tb\r"), "a&#10;&#9;b&#13;");
    }

    #[test]
    fn non_ascii_text_is_kept() {
        assert_eq!(
            escape_text("POST /leads → 201 ✓ 😀"),
            "POST /leads → 201 ✓ 😀"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0.25), "250 µs");
        assert_eq!(duration(12.34), "12.3 ms");
        assert_eq!(duration(450.0), "450 ms");
        assert_eq!(duration(1234.0), "1.23 s");
        assert_eq!(duration(123_000.0), "2 min 03 s");
        assert_eq!(duration(f64::NAN), "?");
        assert_eq!(seconds(1234.0), "1.234");
        assert_eq!(seconds(-1.0), "0.000");
    }

    #[test]
    fn names_are_the_ones_serde_writes() {
        let json = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        for s in [Status::Passed, Status::Failed, Status::Skipped] {
            assert_eq!(status(s), json(serde_json::json!(s)));
        }
        for s in [
            Section::Setup,
            Section::Include,
            Section::Steps,
            Section::Teardown,
        ] {
            assert_eq!(section(s), json(serde_json::json!(s)));
        }
        for k in MessageKind::ALL {
            assert_eq!(message_kind(k), json(serde_json::json!(k)));
        }
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
