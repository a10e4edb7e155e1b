//! FTP control connections accepted by spgate itself, each served by a libunftp server of its
//! own (`Server::service`), outside PROXY protocol mode (where libunftp must accept: it reads
//! the headers of control and data connections alike).
//!
//! What this adds to libunftp's own accept loop:
//! - `[limits]`, through the session layer: a connection over `max_connections` or
//!   `max_per_address` is told `421 Too many connections` and closed; the oldest connection not
//!   logged in is cut to make room under `max_unauthenticated`; accept failures (out of
//!   descriptors) are waited out and logged calmly ([`Acceptor`]).
//! - `[ftp] login_grace_time`: a connection not logged in that long after it opened is closed,
//!   whatever it sends meanwhile (`NOOP` does not extend it). The connection is cut at the TCP
//!   level (no reply: after `AUTH TLS` a plain one would break the TLS stream).
//! - Each connection takes the configuration in force when it opens: greeting, timeouts,
//!   passive ports, and the FTPS certificate and key, read again for each connection (a renewed
//!   certificate is used without a restart or reload). A certificate that cannot be read
//!   refuses the connection with `421` and an error in the log.
//! - A shutdown closes idle sessions at once and the others when their transfers end, at most
//!   [`SHUTDOWN_GRACE`] later (libunftp closed every control connection at once, and an upload
//!   whose control connection closed is not committed: see [`control`](super::control)).
//! - The control socket is known from the accept: no search for it ([`Control::of`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::control::Control;
use super::storage::Files;
use super::{SHUTDOWN_GRACE, auth, greeting, server};
use crate::session::Shared;
use crate::session::accept::{self, Acceptor, admit, cut_off, with_closer};
use crate::session::admission::Ticket;
use crate::session::transfers::Transfers;

/// The reply to a connection over `[limits]`.
const TOO_MANY: &[u8] = b"421 Too many connections, try again later.\r\n";
/// The reply when FTP is off (after a reload) or its server cannot be set up.
const UNAVAILABLE: &[u8] = b"421 Service not available, closing control connection.\r\n";
/// How long libunftp has to wind a session down once its connection is cut.
const WIND_DOWN: Duration = Duration::from_secs(5);

/// Serves FTP on `listener` until `shutdown` is cancelled; see the module docs.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let passive_ports = shared
        .current()
        .config
        .ftp
        .as_ref()
        .map(|f| f.passive_ports.clone());
    tracing::info!(address = %listener.local_addr()?, ?passive_ports, "FTP listening");
    let tracker = TaskTracker::new();
    let mut acceptor = Acceptor::new(listener, "ftp");
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = acceptor.accept() => accepted,
        };
        // Admitted here, in accept order.
        let gateway = shared.current();
        let ticket = match admit(&gateway, "ftp", peer) {
            Ok(ticket) => Arc::new(ticket),
            Err(_) => {
                tracker.spawn(accept::refuse(socket, TOO_MANY));
                continue;
            }
        };
        tracker.spawn(connection(
            socket,
            peer,
            shared.clone(),
            ticket,
            shutdown.clone(),
        ));
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Serves one control connection until it ends, its login grace time is over, it is cut for a
/// newer one, or a shutdown closes it.
async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    ticket: Arc<Ticket>,
    shutdown: CancellationToken,
) {
    let gateway = shared.current();
    let Some(ftp) = gateway.config.ftp.clone() else {
        return accept::refuse(socket, UNAVAILABLE).await;
    };
    let deadline = Instant::now() + ftp.login_grace_time;
    // libunftp leaves Nagle on: replies would wait for the client's delayed acknowledgements.
    let _ = socket.set_nodelay(true);
    let (socket, closer) = match with_closer(socket) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(%peer, error = %crate::logging::chain(&e), "FTP: cannot set up the connection");
            return;
        }
    };
    let control = Control::of(&socket)
        .inspect_err(|e| tracing::debug!(%peer, error = %crate::logging::chain(&e), "FTP control socket not known"))
        .ok();
    let transfers = Arc::new(Transfers::default());
    let files = {
        let (idle, transfers) = (ftp.idle_timeout, transfers.clone());
        Box::new(move || Files::new(idle, control, transfers.clone()))
    };
    let logins = Arc::new(auth::Logins::new(shared.clone(), Some(ticket.clone())));
    let built = server(&ftp, greeting(&ftp.greeting), logins, files)
        .and_then(|builder| builder.build().map_err(std::io::Error::other));
    let server = match built {
        Ok(server) => server,
        Err(e) => {
            tracing::error!(%peer, error = %crate::logging::chain(&e), "FTP connection refused: its server cannot be set up");
            return accept::refuse(socket, UNAVAILABLE).await;
        }
    };
    let served = server.service(socket);
    tokio::pin!(served);
    let grace_over = async {
        tokio::time::sleep_until(deadline).await;
        if ticket.has_logged_in() {
            std::future::pending::<()>().await;
        }
    };
    let shutting_down = async {
        shutdown.cancelled().await;
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, transfers.drain()).await;
    };
    let how = tokio::select! {
        _ = &mut served => return,
        _ = grace_over => {
            tracing::info!(%peer, "FTP connection closed: no login within the grace time");
            std::net::Shutdown::Both
        }
        () = ticket.cut.cancelled() => {
            cut_off(&gateway, "ftp", peer, &ticket);
            std::net::Shutdown::Both
        }
        // Only what the client sends is cut: libunftp sees the end of its commands and ends the
        // session, still writing a reply it owes (the 226 of the transfer that just ended).
        _ = shutting_down => {
            tracing::debug!(%peer, "FTP connection closed: the server is shutting down");
            std::net::Shutdown::Read
        }
    };
    let _ = closer.shutdown(how);
    if tokio::time::timeout(WIND_DOWN, served).await.is_err() {
        let _ = closer.shutdown(std::net::Shutdown::Both);
    }
}
