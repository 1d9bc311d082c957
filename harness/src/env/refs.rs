//! `${...}` references in the ecosystem file.
//!
//! - `${<component>.host}`, `.port`, `.url`, `.admin-url`: how *another
//!   component* reaches it (127.0.0.1 and the chosen port under the process
//!   runtime; the container name and its inner port under docker). Postgres
//!   components also offer `.user`, `.password`, `.database`.
//! - `${self.port}`, `${self.host}`, `${self.bind}`, `${self.bind-host}`:
//!   where this component must listen (`bind` = `bind-host:port`; the bind
//!   host is 127.0.0.1 for processes, 0.0.0.0 in containers).
//! - `${vars.<name>}`: a value from `[vars]`.
//! - `${file:<path>}`: a file next to the ecosystem file (copied into the
//!   container under docker).
//! - `${otlp.url}`, `${otlp.grpc-url}`: the harness's OTLP trace receiver
//!   (HTTP base URL, gRPC endpoint) as the component reaches it (see
//!   [`crate::trace::receiver`]); `otlp` is therefore no component's name.

use super::model::Kind;

/// One reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Var(String),
    File(String),
    Own(String),
    Component {
        component: String,
        attr: String,
    },
    /// `${otlp.url}` or `${otlp.grpc-url}`.
    Otlp(String),
}

const COMPONENT_ATTRS: &[&str] = &[
    "host",
    "port",
    "url",
    "admin-url",
    "user",
    "password",
    "database",
];
const OWN_ATTRS: &[&str] = &["host", "port", "bind", "bind-host"];
const OTLP_ATTRS: &[&str] = &["url", "grpc-url"];

/// Parses the references of `text`.
pub fn parse(text: &str) -> Result<Vec<Ref>, String> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated reference in {text:?}: missing `}}`"))?;
        refs.push(parse_one(&after[..end])?);
        rest = &after[end + 1..];
    }
    Ok(refs)
}

fn parse_one(inner: &str) -> Result<Ref, String> {
    if let Some(path) = inner.strip_prefix("file:") {
        return Ok(Ref::File(path.to_owned()));
    }
    let Some((head, attr)) = inner.split_once('.') else {
        return Err(format!(
            "invalid reference `${{{inner}}}`: expected `${{component.attr}}`, `${{self.attr}}`, `${{vars.name}}` or `${{file:path}}`"
        ));
    };
    Ok(match head {
        "vars" => Ref::Var(attr.to_owned()),
        "self" => Ref::Own(attr.to_owned()),
        "otlp" => Ref::Otlp(attr.to_owned()),
        _ => Ref::Component {
            component: head.to_owned(),
            attr: attr.to_owned(),
        },
    })
}

pub(crate) fn check_own_attr(attr: &str, kind: Kind) -> Result<(), String> {
    if OWN_ATTRS.contains(&attr) {
        Ok(())
    } else {
        Err(format!(
            "`${{self.{attr}}}` is unknown for a {kind}: use one of {}",
            OWN_ATTRS.join(", ")
        ))
    }
}

pub(crate) fn check_otlp_attr(attr: &str) -> Result<(), String> {
    if OTLP_ATTRS.contains(&attr) {
        Ok(())
    } else {
        Err(format!(
            "`${{otlp.{attr}}}` is unknown: use one of {}",
            OTLP_ATTRS.join(", ")
        ))
    }
}

pub(crate) fn check_component_attr(component: &str, attr: &str) -> Result<(), String> {
    if COMPONENT_ATTRS.contains(&attr) {
        Ok(())
    } else {
        Err(format!(
            "`${{{component}.{attr}}}` names an unknown attribute: use one of {}",
            COMPONENT_ATTRS.join(", ")
        ))
    }
}

/// Replaces every reference in `text` by what `resolve` says.
pub fn render(
    text: &str,
    resolve: &mut dyn FnMut(&Ref) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated reference in {text:?}"))?;
        out.push_str(&resolve(&parse_one(&after[..end])?)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_parsed_and_rendered() {
        let text = "postgres://u:${vars.pw}@${postgres.host}:${postgres.port}/db ${self.bind} ${file:a.yaml}";
        let refs = parse(text).expect("parses");
        assert_eq!(
            refs,
            vec![
                Ref::Var("pw".into()),
                Ref::Component {
                    component: "postgres".into(),
                    attr: "host".into()
                },
                Ref::Component {
                    component: "postgres".into(),
                    attr: "port".into()
                },
                Ref::Own("bind".into()),
                Ref::File("a.yaml".into()),
            ]
        );
        let rendered = render(text, &mut |r| {
            Ok(match r {
                Ref::Var(_) => "secret".into(),
                Ref::Component { attr, .. } if attr == "host" => "pg".into(),
                Ref::Component { .. } => "5432".into(),
                Ref::Own(_) => "0.0.0.0:80".into(),
                Ref::File(f) => format!("/files/{f}"),
                Ref::Otlp(a) => format!("otlp-{a}"),
            })
        })
        .expect("renders");
        assert_eq!(
            rendered,
            "postgres://u:secret@pg:5432/db 0.0.0.0:80 /files/a.yaml"
        );
    }

    #[test]
    fn the_otlp_receiver_is_referenced_by_its_own_head() {
        assert_eq!(
            parse("${otlp.url}/v1/traces ${otlp.grpc-url}").unwrap(),
            vec![Ref::Otlp("url".into()), Ref::Otlp("grpc-url".into())]
        );
        assert!(check_otlp_attr("grpc-url").is_ok());
        assert_eq!(
            check_otlp_attr("host").unwrap_err(),
            "`${otlp.host}` is unknown: use one of url, grpc-url"
        );
    }

    #[test]
    fn an_unterminated_reference_is_an_error() {
        assert!(parse("${postgres.url")
            .unwrap_err()
            .contains("unterminated"));
    }
}
