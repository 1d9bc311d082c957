//! No long-lived token in the repository.
//!
//! A JWT written into a file is a credential anyone with the repository
//! holds. One that expires within the contract's `max-lifetime` of its
//! `iat` is harmless by the time it is read; one valid for longer (or
//! without `exp`) is a leak waiting to be used. The scan reads every
//! tracked text file (`git ls-files`, or a walk that skips `target/` and
//! `.git` outside a git checkout) and decodes every JWT-looking string:
//! three base64url parts whose first decodes to a JSON header with `alg`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::{ClassReport, Target};

/// Files larger than this are not read (no text file of the repository is).
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A token found in a file whose lifetime is over the ceiling.
#[derive(Debug, Clone, PartialEq)]
pub struct LongLivedToken {
    /// Relative to the scanned directory.
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// The token's payload.
    pub claims: Value,
    /// `valid for 100 years after its iat`, `no exp`.
    pub why: String,
}

impl LongLivedToken {
    /// `scenarios/x.yaml:12`.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

pub(super) fn sweep(root: &Path, target: &Target, report: &mut ClassReport) -> Result<(), String> {
    let max = target.contract.tokens.max_lifetime;
    let (found, files) = scan(root, max)?;
    report.cases += files;
    report.operations.insert("repository".to_owned());
    for token in found {
        report.found(
            "repository",
            format!("{} commits a token {}", token.place(), token.why),
            format!(
                "rule: tokens.max-lifetime ({}s): a token in a file must expire within it of its iat\nclaims: {}\nfix: mint it when it is used (scenarios: `${{cross-app-token:...}}`)",
                max.as_secs(),
                token.claims
            ),
            None,
        );
    }
    Ok(())
}

/// Every token in the text files of `root` valid for longer than
/// `max_lifetime` after its `iat` (or without `exp`).
///
/// # Errors
/// When the files cannot be listed.
pub fn long_lived_tokens(
    root: &Path,
    max_lifetime: Duration,
) -> Result<Vec<LongLivedToken>, String> {
    scan(root, max_lifetime).map(|(found, _)| found)
}

/// The long-lived tokens and the number of files read.
fn scan(root: &Path, max_lifetime: Duration) -> Result<(Vec<LongLivedToken>, usize), String> {
    let files = match tracked_files(root) {
        Some(files) => files,
        None => {
            let mut files = Vec::new();
            walk(root, Path::new(""), &mut files)?;
            files
        }
    };
    let max = i64::try_from(max_lifetime.as_secs()).unwrap_or(i64::MAX);
    let now = chrono::Utc::now().timestamp();
    let mut found = Vec::new();
    let mut read = 0;
    for file in files {
        let path = root.join(&file);
        if std::fs::metadata(&path).map_or(true, |m| !m.is_file() || m.len() > MAX_FILE_BYTES) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        read += 1;
        for (n, line) in text.lines().enumerate() {
            for claims in jwts(line) {
                if let Some(why) = over_ceiling(&claims, max, now) {
                    found.push(LongLivedToken {
                        file: file.clone(),
                        line: n + 1,
                        claims,
                        why,
                    });
                }
            }
        }
    }
    Ok((found, read))
}

/// `git ls-files` of `root`, or `None` outside a git checkout.
fn tracked_files(root: &Path) -> Option<Vec<PathBuf>> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(
        output
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .collect(),
    )
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let dir = root.join(rel);
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("failed to read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let rel = rel.join(&name);
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(root, &rel, out)?,
            Ok(t) if t.is_file() => out.push(rel),
            _ => {}
        }
    }
    Ok(())
}

/// The payloads of the JWTs in `line`.
fn jwts(line: &str) -> Vec<Value> {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    line.split(|c: char| !is_token_char(c))
        .filter_map(|word| {
            let parts: Vec<&str> = word.trim_matches('.').split('.').collect();
            let [header, payload, _signature] = parts.as_slice() else {
                return None;
            };
            let header = decode_json(header)?;
            header.get("alg")?;
            decode_json(payload)
        })
        .collect()
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// Why `claims` outlive the ceiling, if they do. Without `iat`, the
/// lifetime is counted from `now`.
fn over_ceiling(claims: &Value, max: i64, now: i64) -> Option<String> {
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Some("without `exp` (valid forever)".to_owned());
    };
    let from = claims.get("iat").and_then(Value::as_i64).unwrap_or(now);
    let lifetime = exp.saturating_sub(from);
    (lifetime > max).then(|| format!("valid for {} after its iat (max {max}s)", human(lifetime)))
}

fn human(secs: i64) -> String {
    const YEAR: i64 = 365 * 24 * 3600;
    match secs {
        s if s >= YEAR => format!("{} years", s / YEAR),
        s if s >= 24 * 3600 => format!("{} days", s / (24 * 3600)),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jwts_are_told_from_other_dotted_text() {
        let token = crate::platform::token::Claims::new("a", "b", "c", "", 100, 60).sign(b"s");
        let line = format!("  flow-token: \"{token}\" # see docs.example.com and eyJ.x.y");
        let found = jwts(&line);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["exp"], 160);
        assert!(jwts("version = 1.2.3; a.b.c").is_empty());
    }

    #[test]
    fn the_ceiling_counts_from_iat() {
        assert_eq!(over_ceiling(&json!({ "iat": 0, "exp": 60 }), 60, 0), None);
        assert_eq!(
            over_ceiling(&json!({ "iat": 0, "exp": 61 }), 60, 0).as_deref(),
            Some("valid for 61s after its iat (max 60s)")
        );
        assert!(over_ceiling(&json!({ "iat": 0 }), 60, 0)
            .unwrap()
            .contains("without `exp`"));
        assert!(
            over_ceiling(&json!({ "exp": 4_102_444_800_i64 }), 60, 1_800_000_000)
                .unwrap()
                .contains("years")
        );
    }
}
