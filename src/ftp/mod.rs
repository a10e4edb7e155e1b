//! The FTP/FTPS front-end: libunftp over the protocol-neutral gateway.
//!
//! - [`accept`]: the accept loop, one libunftp server per control connection (limits, login
//!   grace time, shutdown);
//! - [`auth`]: logins (spgate's users and passwords) and the session's user type;
//! - [`control`]: whether a session's control connection is still open (an upload is
//!   committed only then);
//! - [`storage`]: the one `StorageBackend` adapter, over the user's virtual file system;
//! - [`reply`]: storage errors as FTP replies (the one mapping);
//! - [`log`]: libunftp's own log lines, as readable one-line `tracing` events;
//! - [`site`]: `SITE MFMT` / `SITE UTIME` (modification times), `SITE CHMOD` (ignored).
//!
//! Explicit FTPS only (`AUTH TLS`), passive mode only (PASV/EPSV) on `[ftp] passive_ports`.
//! Logins, and the lock after repeated failed ones, are the session layer's
//! ([`crate::session`]); libunftp's own failed-login policy is off (it checked the password of
//! a locked user and answered a right one 1.5 s later than a wrong one).
//!
//! What libunftp 0.24 decides, not spgate:
//! - reply texts are fixed per error kind (see [`reply`]); the storage message goes to the log;
//! - `MFMT` is not a command (500); `SITE MFMT` / `SITE UTIME` stand in (see [`site`]); SITE
//!   handlers do not see the working directory, so the storage adapter remembers the last `CWD`
//!   (a `CDUP` is not seen);
//! - `PWD` shows the working directory as the client named it (`CWD ..` at the top answers
//!   `"/.."`); every path is normalised before use, so it still names the top;
//! - FEAT lists `MLST` without its facts, so lftp lists with `LIST` instead of `MLSD`;
//! - after an FTPS upload the data connection is closed without a TLS `close_notify`: clients
//!   that wait for one (Python's `FTP_TLS.storbinary`) report an error although the file was
//!   stored and the reply is 226;
//! - `APPE` looks the file up for its size and appends at offset 0 when the lookup fails,
//!   which would replace the file: the storage adapter refuses such a put (451);
//! - `OPTS MLST ...` is a parse error that closes the control connection (MLSD/MLST still
//!   answer their default facts: type, size, modify);
//! - `ABOR` does not cancel a transfer in flight: an upload ends at the data connection's end
//!   of file (a reset or an idle data connection aborts it, and nothing is stored);
//! - the storage adapter sees the data connection only: a client killed in the middle of a
//!   `STOR` ends its data connection like a finished upload; spgate commits an upload only
//!   while the session's control connection is still open (see [`control`]).

pub mod accept;
pub mod auth;
pub mod control;
mod log;
pub mod reply;
pub mod site;
pub mod storage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libunftp::ServerBuilder;
use libunftp::options::{FtpsRequired, Shutdown};
use tokio_util::sync::CancellationToken;

use crate::config::{Ftp, TlsRequired};
use crate::session::Shared;

/// How long open sessions may go on after a shutdown starts, so transfers can finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Whether the configuration lets passwords cross the network in plain text.
pub fn plaintext_passwords(ftp: &Ftp) -> bool {
    ftp.tls.is_none() || ftp.tls_required != TlsRequired::All
}

/// The libunftp server for one control connection or, in PROXY protocol mode, for the
/// listener: `ftp`'s settings, logins through `logins`, and a storage adapter from `files` for
/// each session.
fn server(
    ftp: &Ftp,
    greeting: &'static str,
    logins: Arc<auth::Logins>,
    files: Box<dyn Fn() -> storage::Files + Send + Sync>,
) -> std::io::Result<libunftp::ServerBuilder<storage::Files, auth::Session>> {
    let mut builder = ServerBuilder::with_user_detail_provider(files, logins.clone())
        .authenticator(logins)
        .greeting(greeting)
        .logger(log::logger())
        .passive_ports(ftp.passive_ports.clone())
        .idle_session_timeout(ftp.idle_timeout.as_secs().max(1))
        .site_command("MFMT", site::SetModified)
        .site_command("UTIME", site::SetModified)
        .site_command("CHMOD", site::Chmod);
    if let Some(host) = &ftp.passive_host {
        builder = builder.passive_host(host.as_str());
    }
    if let Some(tls) = &ftp.tls {
        // With ring compiled in beside aws-lc-rs, rustls needs a process default provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let required = match ftp.tls_required {
            TlsRequired::All => FtpsRequired::All,
            // Per-user requirements are checked at login (see `auth`).
            TlsRequired::None | TlsRequired::PerUser => FtpsRequired::None,
        };
        builder = builder
            .ftps(tls.cert.clone(), tls.key.clone())
            .ftps_required(required, required);
    }
    Ok(builder)
}

/// libunftp 0.24 takes the greeting as a `&'static str`: each distinct text is leaked once.
fn greeting(text: &str) -> &'static str {
    static LEAKED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut leaked = LEAKED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = leaked.iter().find(|g| **g == text) {
        return known;
    }
    let new: &'static str = Box::leak(text.to_owned().into_boxed_str());
    leaked.push(new);
    new
}

/// Serves FTP in PROXY protocol mode on `address` (already probed free; see `serve`) until
/// `shutdown` is cancelled: libunftp's own listener, the one that reads the headers of control
/// and data connections. Without PROXY protocol, [`accept::serve`] serves instead.
pub async fn serve_proxied(
    address: SocketAddr,
    gateway: Arc<Shared>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let Some(ftp) = gateway.current().config.ftp.clone() else {
        return Ok(());
    };
    let Some(control_port) = ftp.proxy_protocol else {
        return Err(std::io::Error::other("[ftp] proxy_protocol is off"));
    };
    let logins = Arc::new(auth::Logins::new(gateway, None));
    let idle = ftp.idle_timeout;
    // libunftp calls this in its accept loop right after accepting each control connection:
    // the one moment that connection's socket can be told (see `control`).
    let controls = Arc::new(control::Controls::new(address.port()));
    let files = Box::new(move || {
        let control = controls.claim();
        if let Some(control) = &control {
            control.no_delay();
        }
        storage::Files::new(idle, control, Arc::default())
    });
    let stop = shutdown.clone().cancelled_owned();
    let server = server(&ftp, greeting(&ftp.greeting), logins, files)?
        .proxy_protocol_mode(control_port)
        .shutdown_indicator(async move {
            stop.await;
            Shutdown::new().grace_period(SHUTDOWN_GRACE)
        })
        .build()
        .map_err(std::io::Error::other)?;
    tracing::info!(%address, passive_ports = ?ftp.passive_ports, "FTP listening (PROXY protocol)");
    match server.listen(address.to_string()).await {
        Ok(()) => Ok(()),
        // After a shutdown, the only error is sessions outliving the grace period.
        Err(error) if shutdown.is_cancelled() => {
            tracing::warn!(%error, "FTP sessions were cut off at shutdown");
            Ok(())
        }
        Err(e) => Err(std::io::Error::other(format!("ftp on {address}: {e}"))),
    }
}
