//! Reports of a scenario run: JUnit XML for CI, JSON, a self-contained
//! HTML page with a sequence diagram and a trace waterfall of what actually
//! happened, and the run's spans as OTLP/JSON (`traces.json`) for any
//! tracing backend to import.
//!
//! The runner fills in a [`RunReport`] ([`model`]); [`write`] renders it in
//! the asked [`Format`]s into a directory:
//!
//! ```no_run
//! # fn demo(report: &tekup_harness::report::RunReport) -> Result<(), Box<dyn std::error::Error>> {
//! use tekup_harness::report::{self, Format};
//! let formats = Format::parse_list("junit,json,html,traces")?;
//! let written = report::write(report, "reports".as_ref(), &formats)?;
//! // ["reports/junit.xml", "reports/report.json", "reports/report.html", "reports/traces.json"]
//! # Ok(()) }
//! ```
//!
//! Each file is written to a temporary file in the same directory and renamed
//! into place, so a reader (or a run killed halfway) sees the previous report
//! or the new one, never half of one. The renderers are pure functions
//! (`junit::render`, `json::render`, `html::render`) for callers that want the
//! text.

pub mod html;
pub mod json;
pub mod junit;
pub mod model;
mod sequence;
pub(crate) mod text;
mod waterfall;

use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use model::*;

/// A report format, and the file it is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `junit.xml`
    Junit,
    /// `report.json`
    Json,
    /// `report.html`
    Html,
    /// `traces.json`: every scenario's spans as one OTLP/JSON
    /// `ExportTraceServiceRequest` (see [`crate::trace::to_otlp_json`]).
    Traces,
}

impl Format {
    /// Every format, in the order they are written.
    pub const ALL: [Format; 4] = [Format::Junit, Format::Json, Format::Html, Format::Traces];

    /// The name on the command line: `junit`, `json`, `html`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Junit => "junit",
            Format::Json => "json",
            Format::Html => "html",
            Format::Traces => "traces",
        }
    }

    /// The file written in the report directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Junit => "junit.xml",
            Format::Json => "report.json",
            Format::Html => "report.html",
            Format::Traces => "traces.json",
        }
    }

    /// Parses a comma-separated list (`junit,json,html`; spaces and case
    /// ignored, repeats dropped). Every item must name a format.
    pub fn parse_list(list: &str) -> Result<Vec<Format>, FormatError> {
        let mut formats = Vec::new();
        for item in list.split(',') {
            let format = item.parse()?;
            if !formats.contains(&format) {
                formats.push(format);
            }
        }
        Ok(formats)
    }

    fn render(self, report: &RunReport) -> Result<String, serde_json::Error> {
        match self {
            Format::Junit => Ok(junit::render(report)),
            Format::Json => json::render(report),
            Format::Html => Ok(html::render(report)),
            Format::Traces => {
                let spans: Vec<crate::trace::Span> = report
                    .scenarios
                    .iter()
                    .flat_map(|s| s.spans.iter().cloned())
                    .collect();
                crate::trace::to_otlp_json(&spans)
            }
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = FormatError;

    fn from_str(item: &str) -> Result<Self, Self::Err> {
        let wanted = item.trim();
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| FormatError {
                item: wanted.to_owned(),
            })
    }
}

/// A report format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown report format `{item}`: expected a comma-separated list of junit, json, html, traces"
)]
pub struct FormatError {
    /// The item as given (trimmed; empty for `junit,,html`).
    pub item: String,
}

/// Why a report could not be written. Each names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("failed to create the report directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to write the report {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to serialize the report {}", path.display())]
    Serialize {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes `report` into `dir` (created if missing) in each of `formats`;
/// returns the paths written, in the order of `formats`. Each file replaces
/// its previous version atomically.
pub fn write(
    report: &RunReport,
    dir: &Path,
    formats: &[Format],
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut written: Vec<PathBuf> = Vec::with_capacity(formats.len());
    for &format in formats {
        let path = dir.join(format.file_name());
        if written.contains(&path) {
            continue;
        }
        let contents = format
            .render(report)
            .map_err(|source| ReportError::Serialize {
                path: path.clone(),
                source,
            })?;
        write_atomically(&path, contents.as_bytes()).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `contents` to a temporary file next to `path`, syncs it and
/// renames it over `path`. The temporary file is removed on any error.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let prefix = format!(
        ".{}.",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // A report is for everyone who can read the directory, not only us.
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut file = builder.tempfile_in(dir)?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_formats_parses_in_order_without_repeats() {
        assert_eq!(
            Format::parse_list("html, JUnit,json,html").unwrap(),
            vec![Format::Html, Format::Junit, Format::Json]
        );
        assert_eq!("json".parse::<Format>().unwrap(), Format::Json);
    }

    #[test]
    fn an_unknown_format_is_named_with_the_allowed_ones() {
        let err = Format::parse_list("junit,xml,html").unwrap_err();
        assert_eq!(err.item, "xml");
        assert_eq!(
            err.to_string(),
            "unknown report format `xml`: expected a comma-separated list of junit, json, html, traces"
        );
    }

    #[test]
    fn an_empty_item_is_an_error() {
        let err = Format::parse_list("junit,,html").unwrap_err();
        assert_eq!(err.item, "");
        assert!(Format::parse_list("").is_err());
    }

    #[test]
    fn formats_show_as_their_names() {
        let names: Vec<String> = Format::ALL.iter().map(Format::to_string).collect();
        assert_eq!(names, ["junit", "json", "html", "traces"]);
    }
}
