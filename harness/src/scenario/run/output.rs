//! A failed scenario as text a user can act on in a terminal or in
//! `cargo test` output, and the redaction every shown text goes through.

use std::fmt::Write as _;

use crate::report::{ScenarioReport, Status};

/// Removes terminal colour codes (`ESC [ ... m`) from log lines.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Replaces the run's secrets (tenant API keys, secret-looking ecosystem
/// vars, the scenario's `secrets:`), in the forms they take on the way out
/// (see [`forms`]), and anything shaped like a TekUp API key
/// (`tk_<id>_<secret>`) or a bearer token with `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut forms: Vec<String> = secrets.iter().flat_map(|s| forms(s)).collect();
    // Longest first, so a form is not half-replaced by a shorter one.
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
    let mut out = text.to_owned();
    for form in &forms {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), "[redacted]");
        }
    }
    redact_api_keys(&redact_bearer(&out))
}

/// Shortest base64 piece of a secret inside a longer encoded text that is
/// still redacted (shorter pieces would hide ordinary text).
const MIN_PIECE: usize = 6;

/// The texts a secret may show up as: itself; JSON-escaped; URL-encoded (form encoding
/// with `+` or `%20` for spaces, RFC 3986 and `encodeURIComponent` sets,
/// upper- and lower-case hex); base64 in the standard and URL-safe
/// alphabets, padded or not, of the secret alone, and, for a secret inside
/// a longer encoded text (`Basic base64(user:secret)`), the characters that
/// encode only the secret at each of the three byte alignments; and those
/// base64 texts URL-encoded.
pub(crate) fn forms(secret: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    if secret.is_empty() {
        return Vec::new();
    }
    let bytes = secret.as_bytes();
    let mut base64: Vec<String> = [STANDARD, URL_SAFE]
        .iter()
        .map(|e| e.encode(bytes))
        .chain(
            [STANDARD_NO_PAD, URL_SAFE_NO_PAD]
                .iter()
                .map(|e| e.encode(bytes)),
        )
        .collect();
    for offset in 0..3usize {
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(bytes);
        let encoded = STANDARD_NO_PAD.encode(&shifted);
        // Characters whose six bits all come from the secret.
        let first = (8 * offset).div_ceil(6);
        let end = (8 * (offset + bytes.len())) / 6;
        if end >= first + MIN_PIECE {
            let piece = &encoded[first..end];
            base64.push(piece.to_owned());
            base64.push(piece.replace('+', "-").replace('/', "_"));
        }
    }
    let mut out = vec![secret.to_owned()];
    // Inside a JSON string (a response body quoting it): `"` and `\` escaped.
    let quoted = serde_json::Value::from(secret).to_string();
    if let Some(escaped) = quoted.get(1..quoted.len() - 1).filter(|e| *e != secret) {
        out.push(escaped.to_owned());
    }
    for text in std::iter::once(secret).chain(base64.iter().map(String::as_str)) {
        out.extend(url_encodings(text));
    }
    out.extend(base64);
    out.retain(|f| !f.is_empty());
    out
}

/// `text` percent-encoded the ways clients do it.
fn url_encodings(text: &str) -> Vec<String> {
    const FORM: &str = "*-._";
    const RFC3986: &str = "-._~";
    const URI_COMPONENT: &str = "-_.!~*'()";
    let mut out = Vec::new();
    for keep in [FORM, RFC3986, URI_COMPONENT] {
        for upper in [true, false] {
            let encoded = percent(text, keep, upper);
            if encoded != text {
                if keep == FORM {
                    out.push(encoded.replace("%20", "+"));
                }
                out.push(encoded);
            }
        }
    }
    out
}

fn percent(text: &str, keep: &str, upper: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || keep.as_bytes().contains(&b) {
            out.push(char::from(b));
        } else if upper {
            let _ = write!(out, "%{b:02X}");
        } else {
            let _ = write!(out, "%{b:02x}");
        }
    }
    out
}

/// Redacts every text of a scenario's report (steps, failure, sequence
/// diagram), so every writer (console, JUnit, JSON, HTML) gets it clean.
pub(crate) fn redact_report(report: &mut ScenarioReport, secrets: &[String]) {
    let r = |t: &mut String| *t = redact(t, secrets);
    for step in &mut report.steps {
        r(&mut step.label);
        if let Some(name) = &mut step.name {
            r(name);
        }
    }
    if let Some(why) = &mut report.skip_reason {
        r(why);
    }
    for m in &mut report.messages {
        r(&mut m.label);
    }
    if let Some(f) = &mut report.failure {
        r(&mut f.message);
        for t in [&mut f.because, &mut f.diff, &mut f.request, &mut f.response]
            .into_iter()
            .flatten()
        {
            r(t);
        }
        f.ws_events
            .values_mut()
            .flat_map(|events| events.iter_mut())
            .for_each(r);
        f.logs.values_mut().for_each(r);
    }
}

fn redact_bearer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("Bearer ") {
        let (before, after) = rest.split_at(at + "Bearer ".len());
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str("[redacted]");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn redact_api_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("tk_") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let end = candidate
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(candidate.len());
        let token = &candidate[..end];
        // tk_<id>_<secret>: keep the id, hide the secret.
        match token[3..].find('_') {
            Some(i) if token.len() > 3 + i + 1 => {
                out.push_str(&token[..3 + i + 1]);
                out.push_str("[redacted]");
            }
            _ => out.push_str(token),
        }
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

/// The failure of a scenario, or `None` when it passed.
pub fn failure_text(report: &ScenarioReport) -> Option<String> {
    if report.status != Status::Failed {
        return None;
    }
    let failure = report.failure.as_ref()?;
    let mut out = String::new();
    let _ = writeln!(out, "scenario `{}` failed ({})", report.name, report.file);
    let _ = writeln!(out, "  at {}: {}", failure.location, failure.message);
    if let Some(because) = &failure.because {
        let _ = writeln!(out, "  because: {because}");
    }
    if let Some(step) = failure.step.and_then(|i| report.steps.get(i - 1)) {
        let _ = writeln!(out, "  step {}: {}", step.index, step.title());
    }
    if !report.tenants.is_empty() {
        let tenants: Vec<String> = report
            .tenants
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        let _ = writeln!(out, "  tenants: {}", tenants.join(", "));
    }
    let section = |out: &mut String, title: &str, body: &str| {
        let _ = writeln!(out, "\n  --- {title}");
        for line in body.trim_end().lines() {
            let _ = writeln!(out, "  {line}");
        }
    };
    if let Some(diff) = &failure.diff {
        section(&mut out, "diff (- expected, + got)", diff);
    }
    if let Some(request) = &failure.request {
        section(&mut out, "request", request);
    }
    if let Some(response) = &failure.response {
        section(&mut out, "response", response);
    }
    for (conn, events) in &failure.ws_events {
        section(
            &mut out,
            &format!("WebSocket `{conn}` received"),
            &events.join("\n"),
        );
    }
    if !report.steps.is_empty() {
        let steps: Vec<String> = report
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{:>2}. {:<6} {:>8.1} ms  {}  ({})",
                    s.index,
                    format!("{:?}", s.status).to_lowercase(),
                    s.duration_ms,
                    s.title(),
                    s.location
                )
            })
            .collect();
        section(&mut out, "steps", &steps.join("\n"));
    }
    for (component, tail) in &failure.logs {
        section(&mut out, &format!("last log lines of {component}"), tail);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_tokens_are_redacted() {
        let text = "x-tenant-key: tk_ab12_SECRETsecret99\nAuthorization: Bearer abc.def.ghi\nkey=mysecretvalue";
        let out = redact(text, &["mysecretvalue".to_owned()]);
        assert!(!out.contains("SECRETsecret99"), "{out}");
        assert!(out.contains("tk_ab12_[redacted]"), "{out}");
        assert!(
            !out.contains("abc.def.ghi") && out.contains("Bearer [redacted]"),
            "{out}"
        );
        assert!(!out.contains("mysecretvalue"), "{out}");
        assert_eq!(redact("tk_ and tk_x", &[]), "tk_ and tk_x");
    }

    #[test]
    fn secrets_are_redacted_in_their_encoded_forms() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        use base64::Engine as _;
        let secret = "hunter2 S3cret/+?~>";
        let secrets = [secret.to_owned()];
        let texts = [
            secret.to_owned(),
            format!(
                "q={}",
                form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
            ),
            format!("q={}", percent(secret, "-._~", true)),
            format!("q={}", percent(secret, "-._~", false)),
            STANDARD.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            format!("Basic {}", STANDARD.encode(format!("ops:{secret}"))),
            format!("Basic {}", STANDARD.encode(format!("o:{secret}"))),
            format!(
                "x {}",
                URL_SAFE_NO_PAD.encode(format!("{{\"p\":\"{secret}\"}}"))
            ),
            form_urlencoded::byte_serialize(STANDARD.encode(secret).as_bytes()).collect(),
        ];
        for text in texts {
            let out = redact(&format!("before {text} after"), &secrets);
            assert!(
                out.contains("[redacted]") && out.starts_with("before ") && out.ends_with(" after"),
                "{text} -> {out}"
            );
            // What is left of an encoded secret is at most the few
            // characters it shares with its neighbours.
            let left = out.replace("[redacted]", "");
            assert!(left.len() <= "before  after".len() + 16, "{text} -> {out}");
        }
        assert_eq!(redact("nothing here", &secrets), "nothing here");
        let quoting = [r#"pa"ss\word"#.to_owned()];
        assert_eq!(
            redact(r#"{"p":"pa\"ss\\word"}"#, &quoting),
            r#"{"p":"[redacted]"}"#
        );
    }

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "2026  INFO x"
        );
    }
}
