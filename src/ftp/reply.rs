//! What FTP clients see when a storage operation fails: the one place where spgate's storage
//! error kinds become libunftp error kinds (and so FTP reply codes).
//!
//! libunftp 0.24 writes a fixed text per kind ("File not found", "File name not allowed",
//! "Local error"...), so the storage error's own message (a SharePoint naming rule, "connection
//! disabled") reaches the log, not the client. Replies spgate writes itself (the `SITE`
//! commands) carry the message: see [`reply`].

use libunftp::options::{Reply, ReplyCode};
use unftp_core::storage::ErrorKind as Ftp;

use crate::storage::{Error, ErrorKind};

/// The libunftp kind, and so the FTP reply, for a storage error kind:
///
/// | storage kind | libunftp kind | reply |
/// |---|---|---|
/// | `NotFound`, `NotADirectory`, `IsADirectory`, `AlreadyExists` | `PermanentFileNotAvailable` | 550 |
/// | `DirectoryNotEmpty` | `PermanentDirectoryNotEmpty` | 550 |
/// | `PermissionDenied`, `Locked` | `PermissionDenied` | 550 |
/// | `InvalidName` | `FileNameNotAllowedError` | 553 |
/// | `QuotaExceeded` | `ExceededStorageAllocationError` | 552 |
/// | `Unsupported` | `CommandNotImplemented` | 502 |
/// | `Disabled`, `Unavailable`, `Failed` | `LocalError` | 451 |
///
/// A missing path is 550 (never 501) on every command: rclone treats only 550 as "not found".
/// A disabled connection and throttling beyond the retry budget are 451 (transient: the client
/// may retry later); libunftp's 450 reads "File not found", which would mislead.
pub fn kind(kind: ErrorKind) -> Ftp {
    match kind {
        ErrorKind::NotFound
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::AlreadyExists => Ftp::PermanentFileNotAvailable,
        ErrorKind::DirectoryNotEmpty => Ftp::PermanentDirectoryNotEmpty,
        ErrorKind::PermissionDenied | ErrorKind::Locked => Ftp::PermissionDenied,
        ErrorKind::InvalidName => Ftp::FileNameNotAllowedError,
        ErrorKind::QuotaExceeded => Ftp::ExceededStorageAllocationError,
        ErrorKind::Unsupported => Ftp::CommandNotImplemented,
        ErrorKind::Disabled | ErrorKind::Unavailable | ErrorKind::Failed => Ftp::LocalError,
    }
}

/// The libunftp error for a storage error; logs it (failures at warn, refusals at debug).
pub fn error(e: Error) -> unftp_core::storage::Error {
    if matches!(
        e.kind,
        ErrorKind::Failed | ErrorKind::Unavailable | ErrorKind::Disabled
    ) {
        tracing::warn!(error = %crate::logging::chain(&e), "ftp request failed");
    } else {
        tracing::debug!(error = %crate::logging::chain(&e), "ftp request refused");
    }
    let kind = kind(e.kind);
    unftp_core::storage::Error::new(kind, e)
}

/// A reply spgate writes itself, with the storage error's message (internal failures hidden).
pub fn reply(e: &Error) -> Reply {
    let code = match kind(e.kind) {
        Ftp::PermanentFileNotAvailable
        | Ftp::PermanentDirectoryNotAvailable
        | Ftp::PermanentDirectoryNotEmpty
        | Ftp::PermissionDenied => ReplyCode::FileError,
        Ftp::FileNameNotAllowedError => ReplyCode::BadFileName,
        Ftp::ExceededStorageAllocationError => ReplyCode::ExceededStorageAllocation,
        Ftp::CommandNotImplemented => ReplyCode::CommandNotImplemented,
        Ftp::TransientFileNotAvailable => ReplyCode::TransientFileError,
        Ftp::InsufficientStorageSpaceError => ReplyCode::OutOfSpace,
        Ftp::PageTypeUnknown => ReplyCode::PageTypeUnknown,
        Ftp::ConnectionClosed => ReplyCode::ConnectionClosed,
        Ftp::LocalError => ReplyCode::LocalError,
    };
    let message = match e.kind {
        ErrorKind::Failed => "the operation failed on the server".to_string(),
        _ => e.message.clone(),
    };
    Reply::new_with_string(code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_are_550_and_bad_names_553() {
        assert_eq!(kind(ErrorKind::NotFound), Ftp::PermanentFileNotAvailable);
        assert_eq!(kind(ErrorKind::InvalidName), Ftp::FileNameNotAllowedError);
        assert_eq!(kind(ErrorKind::Unavailable), Ftp::LocalError);
        let e = Error::new(ErrorKind::InvalidName, "'a:b': ':' is not allowed");
        match reply(&e) {
            Reply::CodeAndMsg { code, msg } => {
                assert_eq!(code as u32, 553);
                assert!(msg.contains("not allowed"));
            }
            other => panic!("{other:?}"),
        }
    }
}
