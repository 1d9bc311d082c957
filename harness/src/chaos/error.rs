//! Errors of the fault proxy and the link registry.

/// What went wrong while setting up or changing a proxy or a link.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to add toxic `{name}` to proxy `{proxy}`: it already has a toxic of that name; update or remove it, or name the new one with `.named(..)`")]
    DuplicateToxic { proxy: String, name: String },
    #[error("proxy `{proxy}` has no toxic `{name}`; its toxics: {known}")]
    NoSuchToxic {
        proxy: String,
        name: String,
        known: String,
    },
    #[error("invalid toxic `{name}` for proxy `{proxy}`: {message}")]
    InvalidToxic {
        proxy: String,
        name: String,
        message: String,
    },
    #[error("no link `{link}`{why}; the links are: {known}")]
    NoSuchLink {
        link: String,
        why: String,
        known: String,
    },
    #[error("invalid link name {0:?}: write it `from->to`, e.g. `flow-api->redis`")]
    BadLinkName(String),
}

impl ChaosError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }
}

/// `a, b, c`, or `(none)`.
pub(crate) fn list<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    let joined = items
        .into_iter()
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if joined.is_empty() {
        "(none)".into()
    } else {
        joined
    }
}
