//! The notifier's error: whether trying the same delivery again may work, and a message that
//! names no secret (no webhook URL, no password).

/// Whether a failed delivery is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The receiver could not be reached or answered "later" (a timeout, a 5xx, 429, an SMTP
    /// 4xx): tried again after a pause, up to the target's `attempts`.
    Transient,
    /// The receiver refused the message as it is (a 4xx, an SMTP 5xx, a message that cannot
    /// be built): given up at once.
    Permanent,
}

/// A failed delivery.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` saying `what` failed and why (`source`'s own words, once).
    pub fn caused(
        kind: Kind,
        what: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error {
            kind,
            message: format!("{what}: {source}"),
            source: Some(Box::new(source)),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == Kind::Transient
    }
}
