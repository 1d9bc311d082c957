//! Errors of the mocks library.

use std::path::PathBuf;

/// What can go wrong when starting, configuring or verifying a mock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// Binding or inspecting the listening socket failed.
    #[error("failed to bind the {mock} mock to {addr}")]
    Bind {
        /// Which mock.
        mock: &'static str,
        /// The address asked for.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A fixture file could not be read.
    #[error("failed to read fixture file {}", path.display())]
    ReadFixture {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A fixture file did not parse.
    #[error("failed to parse fixture file {}: {message}", path.display())]
    ParseFixture {
        /// The file (or `<builtin>`).
        path: PathBuf,
        /// What is wrong, with line and column when known.
        message: String,
    },
    /// Generating the test CA or server certificate failed.
    #[error("failed to generate TLS certificates")]
    Certificate(#[from] rcgen::Error),
    /// Building the TLS server configuration failed.
    #[error("failed to configure TLS")]
    Tls(#[from] rustls::Error),
    /// Writing a file (for example the CA certificate) failed.
    #[error("failed to write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A fault description was not valid.
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    /// An expectation description was not valid.
    #[error("invalid expectation: {0}")]
    InvalidExpectation(String),
    /// The command line asked for something impossible.
    #[error("invalid arguments: {0}")]
    Usage(String),
    /// Expectations were not met; the message lists each one.
    #[error("mock expectations were not met:\n{0}")]
    Verification(String),
}
