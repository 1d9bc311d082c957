//! Log lines: no line a service logs is longer than `max-log-line`.
//!
//! Read last, after the junk of the other checks (and of the classes before
//! this one). Where a runtime copies logs with a delay, the check first
//! waits (bounded) until some service's log mentions the tenant whose long
//! room name the WebSocket check sent; a platform that never logs it costs
//! that bound, nothing else.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::{Class, ClassReport, Target};
use super::head;
use crate::contract::Limits;

/// How long the log check waits for the provoking tenant to show up.
const SETTLE: Duration = Duration::from_secs(5);

/// How much of an oversized line a finding shows.
const SHOWN: usize = 200;

/// One line over the bound.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Long {
    /// 1-based.
    pub line: usize,
    pub bytes: usize,
    /// Its first characters.
    pub start: String,
}

pub(super) async fn check(target: &Target, limits: &Limits, provoked: Option<&str>) -> ClassReport {
    let mut report = ClassReport::new(Class::Limits);
    let files: Vec<(String, PathBuf)> = target
        .contract
        .services
        .iter()
        .filter_map(|s| Some((s.clone(), target.logs.get(s)?.clone())))
        .collect();
    if files.is_empty() {
        report.notes.push(
            "the runtime keeps no log files of the services (external deployment): log lines not checked"
                .into(),
        );
        return report;
    }
    for service in &target.contract.services {
        if !target.logs.contains_key(service) {
            report
                .notes
                .push(format!("{service}: no log file, its log lines not checked"));
        }
    }
    if let Some(marker) = provoked {
        let deadline = tokio::time::Instant::now() + SETTLE;
        while !files.iter().any(|(_, p)| mentions(p, marker)) {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let max = usize::try_from(limits.max_log_line).unwrap_or(usize::MAX);
    for (service, path) in files {
        let operation = format!("{service} log");
        report.operations.insert(operation.clone());
        report.cases += 1;
        let scanned = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || long_lines(&path, max)).await
        };
        let (long, count) = match scanned {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                report.notes.push(format!(
                    "{service}: failed to read its log {}: {e}",
                    path.display()
                ));
                continue;
            }
            Err(e) => {
                report
                    .notes
                    .push(format!("{service}: the log scan failed: {e}"));
                continue;
            }
        };
        let Some(first) = long.first() else { continue };
        let longest = long.iter().map(|l| l.bytes).max().unwrap_or(first.bytes);
        report.found(
            operation,
            format!(
                "{count} log line(s) over max-log-line ({max} bytes), the longest {longest} bytes"
            ),
            format!(
                "{} line {}, {} bytes: {}\nrequest data in a log line must be cut (and its length said)",
                path.display(),
                first.line,
                first.bytes,
                first.start
            ),
            None,
        );
    }
    report
}

/// Whether the file at `path` holds `needle` (false when unreadable).
fn mentions(path: &Path, needle: &str) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        if line.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return true;
        }
        line.clear();
    }
    false
}

/// The first few lines of the file at `path` longer than `max` bytes (with
/// their start), and how many there are; reads in blocks, so a line of
/// megabytes costs no more memory than its first characters.
pub(super) fn long_lines(path: &Path, max: usize) -> std::io::Result<(Vec<Long>, usize)> {
    let mut reader = BufReader::with_capacity(64 * 1024, std::fs::File::open(path)?);
    let mut found = Vec::new();
    let mut count = 0;
    let mut line = 1;
    let mut bytes = 0usize;
    let mut start: Vec<u8> = Vec::new();
    loop {
        let block = reader.fill_buf()?;
        if block.is_empty() {
            break;
        }
        let (part, ends) = match block.iter().position(|&b| b == b'\n') {
            Some(at) => (&block[..at], true),
            None => (block, false),
        };
        let keep = (SHOWN * 4).saturating_sub(start.len()).min(part.len());
        start.extend_from_slice(&part[..keep]);
        bytes += part.len();
        let used = part.len() + usize::from(ends);
        reader.consume(used);
        if ends {
            finish(&mut found, &mut count, line, bytes, &start, max);
            line += 1;
            bytes = 0;
            start.clear();
        }
    }
    if bytes > 0 {
        finish(&mut found, &mut count, line, bytes, &start, max);
    }
    Ok((found, count))
}

fn finish(
    found: &mut Vec<Long>,
    count: &mut usize,
    line: usize,
    bytes: usize,
    start: &[u8],
    max: usize,
) {
    if bytes <= max {
        return;
    }
    *count += 1;
    if found.len() < 5 {
        let text = plain(&String::from_utf8_lossy(start));
        let shown: String = text.chars().take(SHOWN).collect();
        found.push(Long {
            line,
            bytes,
            start: head(&shown, SHOWN).replace(['\r', '\n'], " "),
        });
    }
}

/// `text` without terminal colour codes (`ESC [ … m`), as a person reads it.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn long_lines_are_found_with_their_start() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        let long = format!("WARN refused room={}", "r".repeat(300_000));
        writeln!(file, "short line").expect("writes");
        writeln!(file, "{long}").expect("writes");
        writeln!(file, "{}", "x".repeat(100)).expect("writes");
        write!(file, "{}", "é".repeat(80)).expect("writes");
        file.flush().expect("flushes");
        let (found, count) = long_lines(file.path(), 100).expect("reads");
        assert_eq!(count, 2);
        assert_eq!(found[0].line, 2);
        assert_eq!(found[0].bytes, long.len());
        assert!(
            found[0].start.starts_with("WARN refused room=rrr"),
            "{}",
            found[0].start
        );
        assert_eq!(found[0].start.chars().count(), SHOWN);
        assert_eq!(found[1].line, 4);
        assert_eq!(found[1].bytes, 160);
        assert!(mentions(file.path(), "refused room"));
        assert_eq!(
            plain("\u{1b}[2m2026\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m room"),
            "2026  WARN room"
        );
        assert!(!mentions(file.path(), "nowhere"));
    }
}
