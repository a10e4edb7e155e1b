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
    let proxied = (shared.current().config.sftp.as_ref()).is_some_and(|s| s.proxy_protocol);
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
            let handler = session::Connection::new(shared.current(), peer, sessions);
            let session = match russh::server::run_stream(config, socket, handler).await {
                Ok(session) => session,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "SSH handshake failed");
                    return;
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
                    let _ = handle.disconnect(russh::Disconnect::ByApplication, "the server is shutting down".into(), "en".into()).await;
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}
