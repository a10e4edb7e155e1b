//! spgate's `SITE` commands. Setting modification times: libunftp 0.24 has no `MFMT` command
//! (it answers "500 Command not implemented"), but it dispatches custom `SITE` commands, so the
//! same operation is offered as `SITE MFMT YYYYMMDDHHMMSS path` and as `SITE UTIME` (what lftp
//! sends after each upload): `SITE UTIME YYYYMMDDHHMMSS path` or ProFTPD's
//! `SITE UTIME path atime mtime ctime UTC`. `SITE CHMOD mode path` is accepted and ignored (as
//! SFTP's chmod), since lftp, FileZilla and WinSCP send it after uploads.
//!
//! Relative paths are resolved against the folder of the session's last `CWD`
//! ([`Files::working_dir`]): libunftp does not tell `SITE` handlers the working directory.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use libunftp::options::{Reply, ReplyCode, SiteCommandContext, SiteCommandHandler};

use super::auth::Session;
use super::reply;
use super::storage::Files;
use crate::vfs;

/// The `SITE MFMT` and `SITE UTIME` handler.
#[derive(Debug)]
pub struct SetModified;

/// An FTP time (`YYYYMMDDHHMMSS`, optionally `.sss`), always UTC.
fn ftp_time(text: &str) -> Option<DateTime<Utc>> {
    let whole = text.split('.').next()?;
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

/// The time and path of `SITE MFMT` / `SITE UTIME` arguments.
fn parse(arguments: &str) -> Option<(DateTime<Utc>, &str)> {
    let arguments = arguments.trim();
    if let Some((time, path)) = arguments.split_once(' ')
        && let Some(at) = ftp_time(time)
    {
        return Some((at, path));
    }
    // ProFTPD: `path atime mtime ctime UTC`.
    let rest = arguments.strip_suffix(" UTC")?;
    let mut parts = rest.rsplitn(4, ' ');
    let _ctime = parts.next()?;
    let mtime = ftp_time(parts.next()?)?;
    let _atime = parts.next()?;
    Some((mtime, parts.next()?))
}

#[async_trait]
impl SiteCommandHandler<Files, Session> for SetModified {
    async fn handle(&self, context: &SiteCommandContext<Files, Session>) -> Reply {
        let Some(user) = context.user.as_ref() else {
            return Reply::new(ReplyCode::NotLoggedIn, "Please log in first");
        };
        let Some((at, path)) = parse(&context.arguments) else {
            return Reply::new(
                ReplyCode::ParameterSyntaxError,
                "Usage: SITE MFMT YYYYMMDDHHMMSS path",
            );
        };
        let vpath = match vfs::normalize(&context.storage.working_dir(), path) {
            Ok(p) => p,
            Err(e) => return reply::reply(&e),
        };
        match user.vfs.set_modified(&vpath, at).await {
            Ok(()) => Reply::new_with_string(
                ReplyCode::FileStatus,
                format!("Modify={}; {path}", at.format("%Y%m%d%H%M%S")),
            ),
            Err(e) => reply::reply(&e),
        }
    }
}

/// The `SITE CHMOD` handler: permissions are not kept (SharePoint has none per file), so a mode
/// change of an existing path is accepted and ignored.
#[derive(Debug)]
pub struct Chmod;

#[async_trait]
impl SiteCommandHandler<Files, Session> for Chmod {
    async fn handle(&self, context: &SiteCommandContext<Files, Session>) -> Reply {
        let Some(user) = context.user.as_ref() else {
            return Reply::new(ReplyCode::NotLoggedIn, "Please log in first");
        };
        let parsed = context.arguments.trim().split_once(' ');
        let Some((_, path)) = parsed.filter(|(mode, _)| {
            !mode.is_empty() && mode.bytes().all(|b| (b'0'..=b'7').contains(&b))
        }) else {
            return Reply::new(
                ReplyCode::ParameterSyntaxError,
                "Usage: SITE CHMOD mode path",
            );
        };
        let stat = match vfs::normalize(&context.storage.working_dir(), path) {
            Ok(vpath) => user.vfs.stat(&vpath).await,
            Err(e) => Err(e),
        };
        match stat {
            Ok(_) => Reply::new(
                ReplyCode::CommandOkay,
                "SITE CHMOD accepted; permissions are not kept",
            ),
            Err(e) => reply::reply(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let (at, path) = parse("20240102030405 /in/a b.txt").unwrap();
        assert_eq!(at.to_rfc3339(), "2024-01-02T03:04:05+00:00");
        assert_eq!(path, "/in/a b.txt");
        let (at, path) =
            parse("/in/a b.txt 20240101000000 20240102030405 20240101000000 UTC").unwrap();
        assert_eq!(at.to_rfc3339(), "2024-01-02T03:04:05+00:00");
        assert_eq!(path, "/in/a b.txt");
        assert!(parse("yesterday /x").is_none());
    }
}
