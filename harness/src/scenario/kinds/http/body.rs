//! What an `http` step sends beside JSON: the `query:` pairs, the
//! `cookies:`, and form, multipart and raw bodies, encoded here rather
//! than by reqwest's optional features so that the bytes (and the failure
//! output that shows them) are the harness's own.

use super::{Body, PartContent};
use crate::scenario::run::Values;

/// A body ready to send.
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) content_type: String,
}

/// `url` with the `query` pairs appended, each name and value URL-encoded
/// (after `${...}` expansion), after any query `url` already has.
pub(crate) fn url(
    values: &Values,
    url: &str,
    query: &[(String, String)],
) -> Result<String, String> {
    if query.is_empty() {
        return Ok(url.to_owned());
    }
    let mut parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let expanded: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| Ok((k.clone(), values.text(v)?)))
        .collect::<Result<_, String>>()?;
    parsed.query_pairs_mut().extend_pairs(expanded);
    Ok(parsed.to_string())
}

/// The `cookie` header of `cookies` (`None` when there are none).
pub(crate) fn cookie(
    values: &Values,
    cookies: &[(String, String)],
) -> Result<Option<String>, String> {
    if cookies.is_empty() {
        return Ok(None);
    }
    let mut pairs = Vec::with_capacity(cookies.len());
    for (name, value) in cookies {
        let value = values.text(value)?;
        if value.contains([';', ',', '"', '\r', '\n']) || value.contains(char::is_whitespace) {
            return Err(format!(
                "cookie `{name}`: a cookie value has no spaces, `;`, `,` or quotes (got `{value}`)"
            ));
        }
        pairs.push(format!("{name}={value}"));
    }
    Ok(Some(pairs.join("; ")))
}

/// The bytes and content type of `body`; texts are expanded, files read now.
pub(crate) async fn encode(values: &Values, body: &Body) -> Result<Encoded, String> {
    match body {
        Body::Form(pairs) => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                form.append_pair(k, &values.text(v)?);
            }
            Ok(Encoded {
                bytes: form.finish().into_bytes(),
                content_type: "application/x-www-form-urlencoded".to_owned(),
            })
        }
        Body::Raw { text, content_type } => Ok(Encoded {
            bytes: values.text(text)?.into_bytes(),
            content_type: values.text(content_type)?,
        }),
        Body::Multipart(parts) => {
            let boundary = format!("tekup-harness-{}", uuid::Uuid::new_v4().simple());
            let mut bytes = Vec::new();
            for part in parts {
                let content = match &part.content {
                    PartContent::Text(t) => values.text(t)?.into_bytes(),
                    PartContent::File(path) => tokio::fs::read(path).await.map_err(|e| {
                        format!("part `{}`: reading {}: {e}", part.name, path.display())
                    })?,
                };
                bytes.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                let mut disposition = format!(
                    "content-disposition: form-data; name=\"{}\"",
                    quoted(&part.name)
                );
                if let Some(filename) = &part.filename {
                    disposition.push_str(&format!(
                        "; filename=\"{}\"",
                        quoted(&values.text(filename)?)
                    ));
                }
                bytes.extend_from_slice(disposition.as_bytes());
                bytes.extend_from_slice(b"\r\n");
                let content_type = match (&part.content_type, &part.content) {
                    (Some(t), _) => Some(values.text(t)?),
                    (None, PartContent::File(_)) => Some("application/octet-stream".to_owned()),
                    (None, PartContent::Text(_)) => None,
                };
                if let Some(t) = content_type {
                    bytes.extend_from_slice(format!("content-type: {t}\r\n").as_bytes());
                }
                bytes.extend_from_slice(b"\r\n");
                bytes.extend_from_slice(&content);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            Ok(Encoded {
                bytes,
                content_type: format!("multipart/form-data; boundary={boundary}"),
            })
        }
    }
}

/// A name inside a quoted `content-disposition` parameter (HTML's form
/// encoding: `"` and line breaks percent-encoded).
fn quoted(name: &str) -> String {
    name.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}
