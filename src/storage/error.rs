//! The storage layer's error: a kind each front-end maps to its protocol's reply in exactly one
//! place, a message safe to show a client, and the source for the logs.

use crate::graph;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    PermissionDenied,
    /// A name SharePoint does not accept; the message names the rule.
    InvalidName,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    /// Locked by someone else (a file open in Office).
    Locked,
    QuotaExceeded,
    /// The connection is disabled until an administrator acts.
    Disabled,
    /// Throttled or unavailable beyond the retry budget; a later try may work.
    Unavailable,
    /// The operation is not possible on this backend.
    Unsupported,
    /// Anything else (I/O errors, unexpected answers).
    Failed,
}

impl ErrorKind {
    /// The kind as one snake_case word: the audit log's `reason`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::NotADirectory => "not_a_directory",
            ErrorKind::IsADirectory => "is_a_directory",
            ErrorKind::DirectoryNotEmpty => "directory_not_empty",
            ErrorKind::Locked => "locked",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Disabled => "connection_disabled",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Failed => "failed",
        }
    }

    /// Whether the gateway refused the operation by its rules (permissions, names), rather
    /// than the operation failing: the audit log's `denied` outcome.
    pub fn is_refusal(self) -> bool {
        matches!(self, ErrorKind::PermissionDenied | ErrorKind::InvalidName)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `source` for the logs; clients see only the message.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("{path}: no such file or folder"),
        )
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match e.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::AlreadyExists => ErrorKind::AlreadyExists,
            Io::PermissionDenied => ErrorKind::PermissionDenied,
            Io::NotADirectory => ErrorKind::NotADirectory,
            Io::IsADirectory => ErrorKind::IsADirectory,
            Io::DirectoryNotEmpty => ErrorKind::DirectoryNotEmpty,
            Io::StorageFull | Io::QuotaExceeded => ErrorKind::QuotaExceeded,
            _ => ErrorKind::Failed,
        };
        let message = match kind {
            ErrorKind::Failed => "local storage failed".to_string(),
            _ => e.to_string(),
        };
        Self {
            kind,
            message,
            source: Some(Box::new(e)),
        }
    }
}

impl From<graph::Error> for Error {
    fn from(e: graph::Error) -> Self {
        let kind = match e.kind {
            graph::Kind::NotFound => ErrorKind::NotFound,
            graph::Kind::AlreadyExists => ErrorKind::AlreadyExists,
            graph::Kind::PermissionDenied => ErrorKind::PermissionDenied,
            graph::Kind::InvalidName => ErrorKind::InvalidName,
            graph::Kind::Locked => ErrorKind::Locked,
            graph::Kind::QuotaExceeded => ErrorKind::QuotaExceeded,
            graph::Kind::Disabled => ErrorKind::Disabled,
            graph::Kind::Unavailable => ErrorKind::Unavailable,
            graph::Kind::Modified
            | graph::Kind::ResyncRequired
            | graph::Kind::Invalid
            | graph::Kind::Io => ErrorKind::Failed,
        };
        // What a client may see: never SharePoint's own wording or status lines (those go to
        // the log through `source`), except the naming rule a name broke.
        let message = match kind {
            ErrorKind::NotFound => "no such file or folder".to_string(),
            ErrorKind::AlreadyExists => {
                "a file or folder with that name already exists".to_string()
            }
            ErrorKind::PermissionDenied => "SharePoint refused access".to_string(),
            ErrorKind::InvalidName if e.code.is_none() => e.message.clone(),
            ErrorKind::InvalidName => "SharePoint refused the name or path".to_string(),
            ErrorKind::Locked => {
                "the file is locked in SharePoint (open in Office or checked out)".to_string()
            }
            ErrorKind::QuotaExceeded => "the SharePoint library is full".to_string(),
            ErrorKind::Disabled => {
                let name = e
                    .message
                    .strip_prefix("SharePoint connection '")
                    .and_then(|rest| rest.split_once("' is disabled"))
                    .map(|(name, _)| name);
                match name {
                    Some(name) => format!(
                        "SharePoint connection {name} is unavailable (disabled by the administrator's alert)"
                    ),
                    None => "the SharePoint connection is unavailable (disabled by the administrator's alert)".to_string(),
                }
            }
            ErrorKind::Unavailable => {
                "SharePoint is busy or unavailable; try again later".to_string()
            }
            _ => "the SharePoint operation failed".to_string(),
        };
        Self {
            kind,
            message,
            source: Some(Box::new(e)),
        }
    }
}
