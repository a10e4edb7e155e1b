//! What SFTP clients see: storage errors mapped to status replies (the one place), and entries
//! as SFTP attributes and `ls -l` long names.

use chrono::{DateTime, Utc};
use russh_sftp::protocol::{File, FileAttributes, StatusCode};
use russh_sftp::server::StatusReply;

use crate::storage::{Entry, Error, ErrorKind};

/// OpenSSH's wording for a status code (sftp-server's `status_to_message`): scripts and
/// client libraries match on these words.
fn wording(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Ok => "Success",
        StatusCode::Eof => "End of file",
        StatusCode::NoSuchFile => "No such file",
        StatusCode::PermissionDenied => "Permission denied",
        StatusCode::Failure => "Failure",
        StatusCode::BadMessage => "Bad message",
        StatusCode::NoConnection => "No connection",
        StatusCode::ConnectionLost => "Connection lost",
        StatusCode::OpUnsupported => "Operation unsupported",
    }
}

/// The status reply for a storage error; details beyond the message go to the log only.
pub fn status(e: &Error) -> StatusReply {
    let status = match e.kind {
        ErrorKind::NotFound => StatusCode::NoSuchFile,
        ErrorKind::PermissionDenied | ErrorKind::Locked => StatusCode::PermissionDenied,
        ErrorKind::Unsupported => StatusCode::OpUnsupported,
        ErrorKind::AlreadyExists
        | ErrorKind::InvalidName
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::DirectoryNotEmpty
        | ErrorKind::QuotaExceeded
        | ErrorKind::Disabled
        | ErrorKind::Unavailable
        | ErrorKind::Failed => StatusCode::Failure,
    };
    // The reason after OpenSSH's words, without repeating them.
    let reason = match e.kind {
        ErrorKind::Failed => "the operation failed on the server",
        ErrorKind::NotFound => e
            .message
            .strip_suffix(": no such file or folder")
            .unwrap_or(&e.message),
        ErrorKind::PermissionDenied => e
            .message
            .strip_suffix(": permission denied")
            .unwrap_or(&e.message),
        _ => &e.message,
    };
    if matches!(
        e.kind,
        ErrorKind::Failed | ErrorKind::Unavailable | ErrorKind::Disabled
    ) {
        tracing::warn!(error = %crate::logging::chain(&e), "sftp request failed");
    } else {
        tracing::debug!(error = %crate::logging::chain(&e), "sftp request refused");
    }
    code(status, reason)
}

/// [`status`] for a request about the virtual path `path`: "not found" names it
/// (`No such file: /in/x.csv`), whatever the backend's message said.
pub fn status_at(e: &Error, path: &str) -> StatusReply {
    match e.kind {
        ErrorKind::NotFound => {
            tracing::debug!(error = %crate::logging::chain(&e), path, "sftp request refused");
            code(StatusCode::NoSuchFile, path)
        }
        _ => status(e),
    }
}

/// A status reply in OpenSSH's words, followed by `reason` when there is one
/// (`No such file: /in/x.csv`).
pub fn code(code: StatusCode, reason: &str) -> StatusReply {
    let words = wording(code);
    if reason.is_empty() {
        StatusReply::new(code).with_message(words)
    } else {
        StatusReply::new(code).with_message(format!("{words}: {reason}"))
    }
}

/// Permissions shown to clients: folders 0755, files 0644.
pub fn attrs(entry: &Entry) -> FileAttributes {
    let mut attrs = FileAttributes::empty();
    attrs.size = Some(entry.size);
    attrs.uid = Some(0);
    attrs.gid = Some(0);
    attrs.permissions = Some(if entry.is_dir { 0o40755 } else { 0o100644 });
    let mtime = entry.modified.timestamp().clamp(0, u32::MAX as i64) as u32;
    attrs.mtime = Some(mtime);
    attrs.atime = Some(mtime);
    attrs
}

/// An `ls -l` line, as OpenSSH's sftp-server writes it.
pub fn long_name(entry: &Entry, owner: &str) -> String {
    let kind = if entry.is_dir {
        "drwxr-xr-x"
    } else {
        "-rw-r--r--"
    };
    let when = if (Utc::now() - entry.modified).num_days().abs() < 180 {
        entry.modified.format("%b %e %H:%M").to_string()
    } else {
        entry.modified.format("%b %e  %Y").to_string()
    };
    format!(
        "{kind}    1 {owner:<8} {owner:<8} {:>8} {when} {}",
        entry.size, entry.name
    )
}

pub fn file(entry: &Entry, owner: &str) -> File {
    File {
        filename: entry.name.clone(),
        longname: long_name(entry, owner),
        attrs: attrs(entry),
    }
}

/// A modification time from SFTP attributes.
pub fn mtime(attrs: &FileAttributes) -> Option<DateTime<Utc>> {
    attrs
        .mtime
        .and_then(|t| DateTime::from_timestamp(t as i64, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_look_like_ls() {
        let entry = Entry::new(
            "a b.txt".into(),
            42,
            false,
            DateTime::from_timestamp(0, 0).unwrap(),
        );
        assert_eq!(
            long_name(&entry, "demo"),
            "-rw-r--r--    1 demo     demo           42 Jan  1  1970 a b.txt"
        );
        let e = Error::new(ErrorKind::InvalidName, "'a:b' is not allowed");
        assert_eq!(
            status(&e).error_message.as_deref(),
            Some("Failure: 'a:b' is not allowed")
        );
        assert_eq!(
            status(&Error::not_found("/in/x.csv"))
                .error_message
                .as_deref(),
            Some("No such file: /in/x.csv")
        );
        assert_eq!(
            status(&Error::not_found("/x")).status_code,
            StatusCode::NoSuchFile
        );
    }
}
