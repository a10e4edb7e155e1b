//! The SFTP front-end: an SSH server (russh) whose only service is the `sftp` subsystem
//! (russh-sftp), over the protocol-neutral gateway.
//!
//! - [`keys`]: host keys; [`session`]: one SSH connection (authentication, channels);
//! - [`files`]: the SFTP requests; [`reply`]: error and attribute mapping;
//! - [`proxy`]: the PROXY protocol header a TCP load balancer sends first.

pub mod files;
pub mod keys;
pub mod proxy;
pub mod reply;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use russh::server::Config;
use russh::{MethodKind, MethodSet, Preferred, cipher};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::gateway::{Gateway, Shared};

/// How long open sessions may go on after a shutdown starts, so transfers can finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

const CIPHERS: &[cipher::Name] = &[
    cipher::AES_128_GCM,
    cipher::AES_256_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_128_CTR,
    cipher::AES_256_CTR,
];

/// The russh configuration: tuned windows and buffers (see shared/CRATES.md).
pub fn ssh_config(gateway: &Gateway) -> std::io::Result<Config> {
    Ok(Config {
        keys: keys::load_or_create(&gateway.config.state.dir)?,
        methods: MethodSet::from(
            &[
                MethodKind::PublicKey,
                MethodKind::Password,
                MethodKind::KeyboardInteractive,
            ][..],
        ),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: Some(Duration::from_secs(3600)),
        keepalive_interval: Some(Duration::from_secs(60)),
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65535,
        channel_buffer_size: 4096,
        event_buffer_size: 4096,
        nodelay: true,
        preferred: Preferred {
            cipher: std::borrow::Cow::Borrowed(CIPHERS),
            ..Preferred::default()
        },
        ..Config::default()
    })
}

/// `socket` and a second handle on it, which can cut the connection while the session owns the
/// first.
fn with_closer(socket: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let socket = socket.into_std()?;
    let closer = socket.try_clone()?;
    Ok((TcpStream::from_std(socket)?, closer))
}

/// The client a load balancer's PROXY protocol header names on `socket` (the balancer itself
/// for its own connections); `None`, logged, when the header is missing or bad.
async fn client_behind(socket: &mut TcpStream, balancer: SocketAddr) -> Option<SocketAddr> {
    match tokio::time::timeout(proxy::HEADER_TIMEOUT, proxy::read_header(socket)).await {
        Ok(Ok(client)) => Some(client.unwrap_or(balancer)),
        Ok(Err(e)) => {
            tracing::warn!(%balancer, error = %e, "SFTP connection closed: [sftp] proxy_protocol is on");
            None
        }
        Err(_) => {
            tracing::warn!(%balancer, "SFTP connection closed: no PROXY protocol header in time");
            None
        }
    }
}

/// Serves SFTP on `listener` until `shutdown` is cancelled; sessions then have
/// [`SHUTDOWN_GRACE`] to finish before they are disconnected.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = Arc::new(ssh_config(&shared.current())?);
    let Some(sftp) = shared.current().config.sftp.clone() else {
        return Ok(());
    };
    let (proxied, grace) = (sftp.proxy_protocol, sftp.login_grace_time);
    let tracker = TaskTracker::new();
    tracing::info!(address = %listener.local_addr()?, "SFTP listening");
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let (config, shared) = (config.clone(), shared.clone());
        let (shutdown, sessions) = (shutdown.clone(), tracker.clone());
        tracker.spawn(async move {
            let deadline = tokio::time::Instant::now() + grace;
            let mut socket = socket;
            let _ = socket.set_nodelay(true);
            let peer = if proxied {
                let Some(client) = client_behind(&mut socket, peer).await else {
                    return;
                };
                client
            } else {
                peer
            };
            let (socket, closer) = match with_closer(socket) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot set up the connection");
                    return;
                }
            };
            let logged_in = Arc::new(AtomicBool::new(false));
            let handler =
                session::Connection::new(shared.current(), peer, sessions, logged_in.clone());
            let started = russh::server::run_stream(config, socket, handler);
            let session = match tokio::time::timeout_at(deadline, started).await {
                Ok(Ok(session)) => session,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "SSH handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "SSH connection closed: no login within the grace time");
                    return;
                }
            };
            // Closes the connection at the deadline unless someone logged in by then.
            let grace_over = async {
                tokio::time::sleep_until(deadline).await;
                if logged_in.load(Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            };
            let handle = session.handle();
            tokio::select! {
                result = session => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "SSH connection ended with an error");
                    }
                }
                _ = async { shutdown.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
                    let bye = handle.disconnect(russh::Disconnect::ByApplication, "the server is shutting down".into(), "en".into());
                    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
                    let _ = closer.shutdown(std::net::Shutdown::Both);
                }
                // Cut at the TCP level: before its key exchange ends, russh's session task does
                // not act on a disconnect request.
                _ = grace_over => {
                    tracing::info!(%peer, "SSH connection closed: no login within the grace time");
                    let _ = closer.shutdown(std::net::Shutdown::Both);
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}
