//! [`Error`]: everything that can go wrong loading the configuration. Each variant that concerns
//! a value names its key; none carries a secret's value or an excerpt of the file.

use std::path::PathBuf;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML. No excerpt of the file is shown: it may hold secrets.
    #[error("{origin}:{line}:{column}: invalid TOML: {message}")]
    Syntax {
        /// The file name (or `<string>`).
        origin: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A key is unknown or has the wrong type, as found while deserialising.
    #[error("{origin}: {}{message}", .key.as_ref().map(|key| format!("{key}: ")).unwrap_or_default())]
    Shape {
        /// The file name (or `<string>`).
        origin: String,
        /// The key holding the bad value; `None` for the top level.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A required key is absent.
    #[error("{key}: required")]
    Missing {
        /// The absent key.
        key: String,
    },
    /// A value is not acceptable.
    #[error("{key}: {message}")]
    Invalid {
        /// The offending key.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A name (or mount path) that must be unique is used twice.
    #[error("{key}: {name:?} is used more than once")]
    Duplicate {
        /// The key holding the second occurrence.
        key: String,
        /// The repeated name.
        name: String,
    },
    /// A mount or sync job refers to a connection that is not defined.
    #[error("{key}: no connection named {name:?} is defined")]
    UnknownConnection {
        /// The referring key.
        key: String,
        /// The unknown name.
        name: String,
    },
    /// An `env:VAR` secret names an unset variable.
    #[error("{key}: environment variable {var} is not set")]
    MissingEnv {
        /// The secret's key.
        key: String,
        /// The variable.
        var: String,
    },
    /// A `file:PATH` secret could not be read.
    #[error("{key}: cannot read secret file {}: {source}", path.display())]
    SecretFile {
        /// The secret's key.
        key: String,
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// An `SPGATE_` variable's value is not UTF-8.
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode {
        /// The variable.
        var: String,
    },
}

impl Error {
    /// The key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::Shape { key, .. } => key.as_deref(),
            Error::Missing { key }
            | Error::Invalid { key, .. }
            | Error::Duplicate { key, .. }
            | Error::UnknownConnection { key, .. }
            | Error::MissingEnv { key, .. }
            | Error::SecretFile { key, .. } => Some(key),
            Error::Read { .. } | Error::Syntax { .. } | Error::EnvNotUnicode { .. } => None,
        }
    }

    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}
