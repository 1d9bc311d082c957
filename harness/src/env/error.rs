//! Errors of starting, probing and stopping the ecosystem.

use std::time::Duration;

use super::model::ModelError;

/// What went wrong while running the ecosystem.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to {action} (docker)")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("failed to start `{component}`: {message}")]
    Start { component: String, message: String },
    #[error("`{package}` is needed for {purpose} and was not installed: {why}")]
    Install {
        package: String,
        purpose: String,
        why: String,
    },
    #[error(
        "`{component}` was not ready ({condition}) after {waited:.1?}; its last log lines:\n{log}"
    )]
    NotReady {
        component: String,
        condition: String,
        waited: Duration,
        log: String,
    },
    #[error("`{component}` exited ({status}) after {waited:.1?}, before it was ready; its last log lines:\n{log}")]
    Exited {
        component: String,
        status: String,
        waited: Duration,
        log: String,
    },
    #[error(
        "failed to find the program `{program}` of `{component}`: looked in {searched}; {hint}"
    )]
    ProgramNotFound {
        component: String,
        program: String,
        searched: String,
        hint: String,
    },
    #[error("failed to find an image for `{component}`: none of {images} exists locally and pulling failed ({pull}); build the offline images with `tekup-harness images build`")]
    ImageMissing {
        component: String,
        images: String,
        pull: String,
    },
    #[error("the {runtime} runtime cannot {action}")]
    Unsupported {
        runtime: &'static str,
        action: String,
    },
    #[error(transparent)]
    Chaos(#[from] crate::chaos::ChaosError),
    #[error("no component `{0}` in the ecosystem")]
    NoSuchComponent(String),
    #[error("failed to {action}: {message}")]
    Other { action: String, message: String },
}

impl EnvError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }

    pub(crate) fn docker(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let action = action.into();
        move |source| Self::Docker { action, source }
    }

    pub(crate) fn other(action: impl Into<String>, message: impl ToString) -> Self {
        Self::Other {
            action: action.into(),
            message: message.to_string(),
        }
    }
}
